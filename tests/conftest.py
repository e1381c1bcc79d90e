"""Fixtures for every test folder: a throwaway PostgreSQL cluster (see postgres.py)."""

from tests.support.postgres import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
