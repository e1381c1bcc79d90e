"""Fixtures for every test folder: a throwaway PostgreSQL cluster (see postgres.py)."""

from postgres import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
