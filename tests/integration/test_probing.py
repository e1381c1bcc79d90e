"""Each content is probed once: real ffprobe on clips made with ffmpeg, a real SQLite store; the
ffprobe runs are counted by wrapping the real probe (not replacing it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.facts import MediaFacts
from agent.handbrake.probe import probe_facts
from agent.probing import facts_for
from agent.scan import fingerprint
from agent.store.sqlite import SqliteStore, open_store
from tests.support.archive import require_tools
from tests.support.media_clips import make_h264_low, make_hdr10

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class CountingProbe:
    """The real probe_facts, counting its calls (each runs ffprobe)."""

    def __init__(self) -> None:
        self.probed: list[str] = []

    def __call__(self, path: Path) -> MediaFacts:
        self.probed.append(path.name)
        return probe_facts(path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(tmp_path / "state")
    yield opened
    opened.close()


def files(*paths: Path) -> list[tuple[Path, str]]:
    return [(path, fingerprint(path, size=path.stat().st_size)) for path in paths]


def test_a_second_pass_over_unchanged_files_runs_no_ffprobe(tmp_path: Path, store: SqliteStore) -> None:
    require_tools()
    low = make_h264_low(tmp_path / "low.mkv")
    hdr = make_hdr10(tmp_path / "hdr.mkv")
    counting = CountingProbe()

    first = facts_for(store, files(low, hdr), now=NOW, probe=counting)
    second = facts_for(store, files(low, hdr), now=NOW, probe=counting)

    assert sorted(counting.probed) == ["hdr.mkv", "low.mkv"]  # once each, on the first pass only
    assert first == second
    assert all(known.facts is not None and known.error is None for known in second.values())


def test_a_corrupt_file_is_reported_alone_and_probed_again_only_when_its_content_changes(
    tmp_path: Path, store: SqliteStore
) -> None:
    require_tools()
    good = make_h264_low(tmp_path / "good.mkv")
    corrupt = tmp_path / "corrupt.mkv"
    corrupt.write_bytes(b"\x1aE\xdf\xa3" + b"garbage " * 4000)
    counting = CountingProbe()

    found = facts_for(store, files(good, corrupt), now=NOW, probe=counting)
    facts_for(store, files(good, corrupt), now=NOW, probe=counting)

    (corrupt_fingerprint,) = [fp for path, fp in files(corrupt)]
    reason = found[corrupt_fingerprint].error or ""
    assert reason.startswith("corrupt.mkv: ffprobe cannot read it (exit code 1): ") and "Invalid data" in reason
    assert all(known.facts is not None for fp, known in found.items() if fp != corrupt_fingerprint)
    assert sorted(counting.probed) == ["corrupt.mkv", "good.mkv"]  # the failure is kept: not probed again

    make_h264_low(corrupt)  # the file is replaced by a good copy: a new content, probed once
    again = facts_for(store, files(good, corrupt), now=NOW, probe=counting)

    assert counting.probed.count("corrupt.mkv") == 2
    assert all(known.facts is not None for known in again.values())


def test_a_file_ffprobe_could_not_be_run_on_is_not_kept_as_unreadable(tmp_path: Path, store: SqliteStore) -> None:
    require_tools()
    low = make_h264_low(tmp_path / "low.mkv")
    missing = tmp_path / "no-such-ffprobe"  # the host's ffprobe is gone (uninstalled, not mounted yet)

    while_missing = facts_for(store, files(low), now=NOW, probe=lambda path: probe_facts(path, ffprobe=str(missing)))
    once_back = facts_for(store, files(low), now=NOW)

    assert while_missing == {}  # nothing known yet: not "unreadable" for as long as the content stays
    assert all(known.facts is not None for known in once_back.values()) and len(once_back) == 1
