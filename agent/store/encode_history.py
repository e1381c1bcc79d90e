"""A library's latest finished encodes, for the estimated saving (`agent.saving_estimate`).

Read from the ledger (each encode's source size, the size published, and the `larger_output`
fallback that applied) with its source's video codec from the media facts kept for its
fingerprint. Only encodes: adopted outputs and a rule's copies (`copy:` preset identities) are
left out. The latest HISTORY_ROWS by `encoded_at`, through a partial index of the encodes
(`ledger_encodes`), so the read costs the same however big the ledger is.
"""

from __future__ import annotations

from agent.facts import facts_from_json
from agent.saving_estimate import HISTORY_ROWS, FinishedEncode
from agent.store.sql import Database


def finished_encodes(database: Database, library: str, *, limit: int = HISTORY_ROWS) -> list[FinishedEncode]:
    """Return library's latest `limit` finished encodes, the latest first."""
    rows = database.execute(
        """
        SELECT m.facts, l.size, l.output_size, l.larger_output
        FROM ledger l LEFT JOIN media_facts m ON m.fingerprint = l.fingerprint
        WHERE l.library = ? AND l.origin = 'encoded' AND l.output_size IS NOT NULL
          AND substr(l.preset_hash, 1, 5) <> 'copy:'
        ORDER BY l.encoded_at DESC
        LIMIT ?
        """,
        (library, limit),
    ).fetchall()
    return [
        FinishedEncode(_codec(facts), int(size), int(output_size), larger_output)
        for facts, size, output_size, larger_output in rows
    ]


def _codec(facts: object) -> str | None:
    parsed = None if facts is None else facts_from_json(str(facts))
    return None if parsed is None or parsed.video is None else parsed.video.codec.lower()
