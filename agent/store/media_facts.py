"""Each content's media facts, kept by fingerprint: a file is probed once, not every pass.

The key is the fingerprint alone (size + sampled hash), not the path: a renamed or copied file
has the same content and the same facts, and a rewritten one has a new fingerprint, so new facts.
A probe that failed is kept too, with its reason: a corrupt file is not probed again every pass,
only when its content changes. Facts stored by another version of the parser (`agent.facts`)
read as missing, so they are probed again.

Reads take the fingerprints a pass needs, a batch at a time (parameterized `IN` lists of at
most READ_BATCH), from the primary key: the cost follows the batch, not the table.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from agent.facts import MediaFacts, facts_from_json, facts_to_json
from agent.store.sql import Database
from agent.timestamps import stamp

READ_BATCH = 500


class StoredFacts(NamedTuple):
    """What is known of a content: its facts, or why they could not be read (exactly one is set)."""

    facts: MediaFacts | None
    error: str | None
    probed_at: str


def record(database: Database, fingerprint: str, *, facts: MediaFacts | None, error: str | None, now: datetime) -> None:
    """Keep a content's facts (or why ffprobe could not read them), replacing what was kept for it;
    raise ValueError unless exactly one of facts and error is given."""
    if (facts is None) == (error is None):
        raise ValueError("give the facts or the error, not both or neither")
    database.execute(
        """
        INSERT INTO media_facts (fingerprint, facts, error, probed_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (fingerprint) DO UPDATE SET
            facts = excluded.facts, error = excluded.error, probed_at = excluded.probed_at
        """,
        (fingerprint, None if facts is None else facts_to_json(facts), error, stamp(now)),
    )


def read(database: Database, fingerprints: Collection[str]) -> dict[str, StoredFacts]:
    """Return what is kept for each of these fingerprints that has anything kept (by the current parser)."""
    wanted = list(dict.fromkeys(fingerprints))
    found: dict[str, StoredFacts] = {}
    for start in range(0, len(wanted), READ_BATCH):
        batch = wanted[start : start + READ_BATCH]
        marks = ", ".join(["?"] * len(batch))
        rows = database.execute(
            f"SELECT fingerprint, facts, error, probed_at FROM media_facts WHERE fingerprint IN ({marks})",  # noqa: S608
            batch,
        ).fetchall()
        for fingerprint, facts, error, probed_at in rows:
            parsed = None if facts is None else facts_from_json(str(facts))
            if facts is not None and parsed is None:
                continue  # kept by another parser version: probe again
            found[str(fingerprint)] = StoredFacts(parsed, None if error is None else str(error), str(probed_at))
    return found


def forget(database: Database, fingerprints: Collection[str]) -> int:
    """Forget what is kept for these fingerprints (contents no longer anywhere); return how many were forgotten."""
    forgotten = 0
    wanted = list(dict.fromkeys(fingerprints))
    for start in range(0, len(wanted), READ_BATCH):
        batch = wanted[start : start + READ_BATCH]
        marks = ", ".join(["?"] * len(batch))
        cursor = database.execute(f"DELETE FROM media_facts WHERE fingerprint IN ({marks})", batch)  # noqa: S608
        forgotten += max(cursor.rowcount, 0)
    return forgotten
