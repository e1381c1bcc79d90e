"""Fixtures for every test folder: a throwaway PostgreSQL cluster (tests/support/postgres.py) and
`agents`, which starts `hb2r run` processes and stops them at the end (tests/support/agent_process.py)."""

from tests.support.agent_process import agents
from tests.support.postgres import postgres_cluster, postgres_url

__all__ = ["agents", "postgres_cluster", "postgres_url"]
