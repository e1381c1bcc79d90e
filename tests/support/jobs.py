"""A job as the tests queue it: the fields `enqueue` takes, the same for the SQLite job functions and for
any store (`jobs.enqueue(connection, **new_job(...))`, `store.enqueue(**new_job(...))`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def new_job(
    rel_path: str = "Show/E01.mkv",
    *,
    library: str = "tv",
    fingerprint: str | None = None,
    preset_hash: str = "p1",
    output_path: str | None = None,
    seconds: float = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return enqueue's arguments for a new file at rel_path in library: fingerprint `100:REL_PATH` and
    output LIBRARY/REL_PATH unless given, queued at now (else `seconds` after T0)."""
    return {
        "library": library,
        "rel_path": rel_path,
        "fingerprint": fingerprint or f"100:{rel_path}",
        "preset_hash": preset_hash,
        "output_path": output_path or f"{library.upper()}/{rel_path}",
        "reason": "new",
        "now": now or T0 + timedelta(seconds=seconds),
    }
