"""The one text form of a moment that hb2r stores and serves: ISO 8601, UTC, microseconds, "+00:00".

Why one: the store compares timestamps as text (`not_before <= now`, a lease's or a revoked
token's expiry), and the API and the live feed serve stored ones next to ones made on the
spot. With one fixed width and one offset, text order is time order, and every reader (the
status page, a script, `datetime.fromisoformat`) parses all of them alike. `isoformat()`
alone is not enough: it drops the microseconds of a whole second and keeps any offset.
The database's own clock (agent.store.leases.database_now) is formatted to the same text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(moment: datetime) -> str:
    """Return moment as the store's text, e.g. 2026-12-01T12:00:00.000000+00:00.

    Raise ValueError for a naive datetime: its time zone would be a guess.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timestamp needs an aware datetime (UTC), got the naive {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
