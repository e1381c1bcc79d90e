"""What the rules did, per library, as the ledger records it: the sources a rule published as they
are (`copy:` rows that no `larger_output` fallback made), and the verified encodes that saved too
little, by the `larger_output.then` that applied (copy, keep or skip).

Both are counted through partial indexes over just those rows (migration 14), never over the
whole ledger: a library of a million outputs with a hundred copies reads a hundred index entries.
A rule's `skip` publishes nothing and records nothing; the engine counts those from its plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.store.sql import Database

LARGER_OUTPUT_THEN = ("copy", "keep", "skip")


@dataclass(frozen=True)
class LibraryDecisions:
    """One library's rule copies and larger-output fallbacks (by `then`), as recorded."""

    copies: int = 0
    larger_output: dict[str, int] = field(default_factory=dict)


def note_larger_output(database: Database, *, output_path: str, then: str) -> None:
    """Record that the ledger row of output_path is a `larger_output` fallback (`then`)."""
    database.execute("UPDATE ledger SET larger_output = ? WHERE output_path = ?", (then, output_path))


def by_library(database: Database) -> dict[str, LibraryDecisions]:
    """Return, per library with any, its rule copies and its larger-output fallbacks."""
    copies = dict(
        database.execute(
            "SELECT library, count(*) FROM ledger"
            " WHERE substr(preset_hash, 1, 5) = 'copy:' AND larger_output IS NULL GROUP BY library"
        ).fetchall()
    )
    fallbacks: dict[str, dict[str, int]] = {}
    for library, then, total in database.execute(
        "SELECT library, larger_output, count(*) FROM ledger WHERE larger_output IS NOT NULL"
        " GROUP BY library, larger_output"
    ).fetchall():
        fallbacks.setdefault(library, {})[then] = int(total)
    return {
        library: LibraryDecisions(int(copies.get(library, 0)), fallbacks.get(library, {}))
        for library in sorted(set(copies) | set(fallbacks))
    }
