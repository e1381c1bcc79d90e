"""Media facts kept by fingerprint, as every store must keep them: a content is probed once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.domain import LedgerEntry
from agent.facts import facts_to_json, parse_facts
from agent.saving_estimate import FinishedEncode
from agent.store.protocol import Store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "ffprobe"
HDR10 = parse_facts((RECORDED / "hdr10.streams.json").read_text(), (RECORDED / "hdr10.frame.json").read_text())
MULTI = parse_facts((RECORDED / "multi_track.streams.json").read_text())


def test_facts_kept_for_a_fingerprint_are_read_back_whole(store: Store) -> None:
    store.record_facts("100:a", facts=HDR10, error=None, now=T0)
    store.record_facts("200:b", facts=MULTI, error=None, now=T0)

    found = store.facts_for(["100:a", "200:b", "300:never-probed"])

    assert set(found) == {"100:a", "200:b"}
    assert (found["100:a"].facts, found["200:b"].facts) == (HDR10, MULTI)
    assert found["100:a"].error is None


def test_a_failed_probe_is_kept_with_its_reason_until_the_content_is_probed_again(store: Store) -> None:
    reason = "ffprobe cannot read it (exit code 1): Invalid data found when processing input"
    store.record_facts("100:a", facts=None, error=reason, now=T0)
    assert store.facts_for(["100:a"])["100:a"].error == reason

    store.record_facts("100:a", facts=HDR10, error=None, now=T0)

    kept = store.facts_for(["100:a"])["100:a"]
    assert (kept.facts, kept.error) == (HDR10, None)


def test_facts_and_an_error_together_or_neither_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="not both or neither"):
        store.record_facts("100:a", facts=HDR10, error="x", now=T0)
    with pytest.raises(ValueError, match="not both or neither"):
        store.record_facts("100:a", facts=None, error=None, now=T0)
    assert store.facts_for(["100:a"]) == {}


def test_many_fingerprints_are_read_and_forgotten_in_batches(store: Store) -> None:
    fingerprints = [f"{index}:x" for index in range(1200)]
    with store.transaction():
        for fingerprint in fingerprints:
            store.record_facts(fingerprint, facts=MULTI, error=None, now=T0)

    assert len(store.facts_for(fingerprints)) == 1200
    assert store.forget_facts(fingerprints[:700]) == 700
    assert sorted(store.facts_for(fingerprints)) == sorted(fingerprints[700:])


def test_facts_kept_by_another_parser_version_read_as_missing(store: Store) -> None:
    store.record_facts("100:a", facts=HDR10, error=None, now=T0)
    older = json.loads(facts_to_json(HDR10))
    older["version"] = 0
    store.database.execute("UPDATE media_facts SET facts = ? WHERE fingerprint = ?", (json.dumps(older), "100:a"))

    assert store.facts_for(["100:a"]) == {}


def test_a_librarys_finished_encodes_come_with_their_sources_codec_the_latest_first(store: Store) -> None:
    def record(rel_path: str, fingerprint: str, *, at: int, output_size: int | None, library: str = "tv") -> None:
        entry = LedgerEntry(library, rel_path, fingerprint, 1000, 1, "p1", f"TV/{rel_path}")
        store.record_output(entry, encoded_at=f"2024-05-01T12:00:0{at}+00:00", output_size=output_size)

    store.record_facts("1000:a", facts=HDR10, error=None, now=T0)  # hevc
    record("a.mkv", "1000:a", at=1, output_size=600)
    record("b.mkv", "1000:b", at=2, output_size=400)  # never probed: codec unknown
    record("c.mkv", "1000:c", at=3, output_size=None)  # its size not known: left out
    record("d.mkv", "1000:d", at=4, output_size=10, library="movies")  # another library

    assert store.finished_encodes("tv") == [
        FinishedEncode(None, 1000, 400, None),
        FinishedEncode("hevc", 1000, 600, None),
    ]
