"""What the encodes finished since a moment saved (the "queue drained" notification's today), on every store.

Counted: jobs done since then whose ledger row still holds the content they encoded. Not
counted: jobs done before, outputs adopted rather than encoded, an output replaced since by
another content's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.domain import LedgerEntry
from agent.store.protocol import Store
from agent.store.savings import Saving

MIDNIGHT = datetime(2024, 5, 1, tzinfo=UTC)


def encoded(store: Store, rel_path: str, *, at: datetime, size: int, output_size: int, adopted: bool = False) -> None:
    """A job for rel_path, run and done at `at`, with its ledger row (as the dispatcher publishes it)."""
    job = store.enqueue(
        library="tv", rel_path=rel_path, fingerprint=f"f:{rel_path}", preset_hash="p1",
        output_path=f"TV/{rel_path}", reason="new", now=at - timedelta(minutes=5),
    )  # fmt: skip
    assert job is not None
    with store.transaction():
        store.mark_running(job.id, now=at - timedelta(minutes=1))
        entry = LedgerEntry("tv", rel_path, f"f:{rel_path}", size, 1, "p1", f"TV/{rel_path}")
        store.record_output(entry, encoded_at=at.isoformat(), output_size=output_size, adopted=adopted)
        store.mark_done(job.id, now=at)


def test_only_what_was_encoded_since_the_moment_is_counted(store: Store) -> None:
    encoded(store, "yesterday.mkv", at=MIDNIGHT - timedelta(hours=2), size=5000, output_size=1000)
    encoded(store, "morning.mkv", at=MIDNIGHT + timedelta(hours=8), size=3000, output_size=1000)
    encoded(store, "noon.mkv", at=MIDNIGHT + timedelta(hours=12), size=2000, output_size=500)
    encoded(store, "adopted.mkv", at=MIDNIGHT + timedelta(hours=9), size=9000, output_size=100, adopted=True)

    saving = store.saved_since(MIDNIGHT)

    assert saving == Saving(files=2, input_bytes=5000, output_bytes=1500)
    assert saving.saved_bytes == 3500


def test_an_output_replaced_by_another_content_since_is_not_counted(store: Store) -> None:
    encoded(store, "a.mkv", at=MIDNIGHT + timedelta(hours=1), size=3000, output_size=1000)
    with store.transaction():  # the source changed and was encoded again by a job not yet done
        store.record_output(
            LedgerEntry("tv", "a.mkv", "f:a2", 4000, 2, "p1", "TV/a.mkv"),
            encoded_at=(MIDNIGHT + timedelta(hours=2)).isoformat(),
            output_size=800,
        )

    assert store.saved_since(MIDNIGHT) == Saving(0, 0, 0)


def test_nothing_encoded_saves_nothing(store: Store) -> None:
    assert store.saved_since(MIDNIGHT) == Saving(0, 0, 0)
