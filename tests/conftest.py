"""Fixtures for every test folder: a throwaway PostgreSQL cluster, a database and
a store of it on their own connection (tests/support/postgres.py), and
`agents`, which starts `hb2r run` processes and stops them at the end (tests/support/agent_process.py)."""

from tests.support.agent_process import agents
from tests.support.postgres import direct_postgres_store, postgres_cluster, postgres_url

__all__ = ["agents", "direct_postgres_store", "postgres_cluster", "postgres_url"]
