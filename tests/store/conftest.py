"""The `store` fixture: every contract test runs once per store implementation.

Adding a store is one line in STORES plus a fixture named `<name>_store` that yields an
empty, migrated store of that kind and closes it afterwards (for PostgreSQL: one on the
throwaway cluster fixture, e.g. `postgres_store`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.postgres_store import PostgresStore, open_postgres_store
from agent.store.protocol import Store
from agent.store.sqlite import SqliteStore, open_store

STORES = ["sqlite", "postgres"]
# Until the shared `store` fixture includes PostgreSQL, these tests run on it through their own fixture.
LEASE_STORES = [*STORES, *([] if "postgres" in STORES else ["postgres"])]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Store:
    found: Store = request.getfixturevalue(f"{request.param}_store")
    return found


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = open_postgres_store(postgres_url)
    yield opened
    opened.close()
