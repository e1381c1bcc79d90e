"""Decision tables for the pure planner: desired (Config) + actual (Observation) + memory (Ledger).

Every row builds the three inputs from plain values and names the Plan a person should see.
The library under test is `tv` (source /src/tv, output folder TV, mkv preset, stable_after 60s)
unless a row says otherwise. No row touches the disk: the planner does no I/O.

Every table runs in three modes (the `planner` fixture), which must give the same actions in
the same order: the whole library decided at once, as a full pass does; one folder at a time
(`agent.batch_plan`); and through the store, as a pass with bounded memory does
(`agent.plan_from_store`): the row's ledger, scan memory and archive are written into a real
SQLite store in a temporary folder, and each batch reads back only its own facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from agent.batch_plan import COPY_MARK, SKIP_MARK
from agent.config.models import Config
from agent.domain import (
    Action,
    Adopt,
    ArchiveObservation,
    Drift,
    DriftReason,
    Ledger,
    LibraryObservation,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    ScanProblem,
    SeenFile,
    Skip,
    SourceFile,
    SourceStatus,
    Transcode,
    TranscodeReason,
    UserChange,
    UserChangeKind,
    UserRecord,
    Wait,
)
from agent.identity import decided_identity
from agent.plan import fingerprints_needed, plan
from tests.support.plan_builders import (
    ADMIN_HASH,
    CONFIG,
    COPIED,
    COPIED_OUT,
    EPISODE,
    EPISODE_OUT,
    HOUR,
    MB,
    NOW,
    NS,
    OTHER,
    OTHER_HASH,
    RENAMED,
    THIRD,
    TV_HASH,
    _assert_actions,
    _carry_out,
    _config,
    _disk,
    _done,
    _file,
    _ledger,
    _library,
    _out,
    _plan,
    _tv,
    planner,  # noqa: F401 - autouse: every table runs whole, by folder, through the store
)

# --- builders ------------------------------------------------------------------------------


# --- files used by several rows -------------------------------------------------------------

LEAVE_HEVC_ALONE = [{"name": "already efficient", "when": {"codec": ["hevc"]}, "action": "copy"}]


def _copied(preset_hash: str = TV_HASH, mark: str = COPY_MARK, **settings: Any) -> str:
    """Return the identity a ledger row of a copy (or a skip) made by these rules holds."""
    return mark + decided_identity(preset_hash, _config(_library(**settings)).libraries[0])


# --- one library, one decision per row ------------------------------------------------------

LIBRARY_CASES = [
    pytest.param(
        CONFIG,
        _disk(EPISODE),
        _ledger(),
        [Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.NEW)],
        id="new-stable-file-is-transcoded",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi", age=10)),
        _ledger(),
        [Wait("tv", "a.avi", 50.0)],
        id="file-still-growing-waits-until-stable-after-has-passed",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi", age=HOUR, ctime_age=15)),
        _ledger(),
        [Wait("tv", "a.avi", 45.0)],
        id="copy-with-back-dated-mtime-waits-on-its-ctime",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi", age=HOUR)),
        _ledger(seen={("tv", "a.avi"): SeenFile(MB // 2, NOW - HOUR * NS, None, None)}),
        [Wait("tv", "a.avi", 60.0)],
        id="file-that-grew-since-the-last-scan-waits-though-its-mtime-is-old",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi", age=HOUR)),
        _ledger(seen={("tv", "a.avi"): SeenFile(MB, NOW - HOUR * NS, None, NOW - 20 * NS)}),
        [Wait("tv", "a.avi", 40.0)],
        id="change-seen-before-a-restart-still-waits",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi", age=HOUR)),
        _ledger(seen={("tv", "a.avi"): SeenFile(MB, NOW - HOUR * NS, None, NOW - 600 * NS)}),
        [Transcode("tv", _file("a.avi", age=HOUR), "TV/a.mkv", TranscodeReason.NEW)],
        id="change-seen-long-ago-no-longer-holds-the-file-back",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("empty.mkv", size=0)),
        _ledger(),
        [Skip("tv", "empty.mkv", "empty file")],
        id="empty-stable-file-is-skipped-with-a-reason",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("empty.mkv", size=0, age=5)),
        _ledger(),
        [Wait("tv", "empty.mkv", 55.0)],
        id="empty-file-just-created-waits-it-may-be-a-copy-starting",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        [],
        id="recorded-source-unchanged-with-its-output-is-in-sync",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", size=2 * MB, age=600, fingerprint="fp:recut"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        [
            Transcode(
                "tv",
                _file("Show/S01E01.mkv", size=2 * MB, age=600, fingerprint="fp:recut"),
                EPISODE_OUT,
                TranscodeReason.CHANGED,
            )
        ],
        id="changed-source-is-re-encoded",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", age=600, fingerprint="fp:episode"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        [],
        id="touched-source-with-same-fingerprint-is-in-sync",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[]),
        _ledger(_done(EPISODE)),
        [Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.OUTPUT_MISSING)],
        id="output-missing-is-re-encoded",
    ),
    pytest.param(
        CONFIG,
        _disk(RENAMED, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        [RenameOutput("tv", RENAMED, EPISODE.rel_path, EPISODE_OUT, "TV/Show/Season 1/Pilot.mkv")],
        id="renamed-source-moves-output-and-leaves-no-orphan",
    ),
    pytest.param(
        CONFIG,
        _disk(RENAMED, outputs=[]),
        _ledger(_done(EPISODE)),
        [Transcode("tv", RENAMED, "TV/Show/Season 1/Pilot.mkv", TranscodeReason.NEW)],
        id="rename-whose-old-output-is-gone-is-transcoded",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/Pilot.mkv", fingerprint="fp:something-else"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        [
            Transcode(
                "tv", _file("Show/Pilot.mkv", fingerprint="fp:something-else"), "TV/Show/Pilot.mkv", TranscodeReason.NEW
            ),
            Drift("tv", EPISODE.rel_path, EPISODE_OUT, DriftReason.SOURCE_VANISHED),
        ],
        id="new-file-with-other-content-is-no-rename-and-the-old-output-drifts",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(),
        [Adopt("tv", EPISODE, EPISODE_OUT)],
        id="existing-output-without-ledger-entry-is-adopted-not-re-encoded",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.mp4", fingerprint="fp:new-cut"), outputs=["TV/a.mkv"]),
        _ledger(_done(_file("a.avi", fingerprint="fp:old-cut"))),
        [Transcode("tv", _file("a.mp4", fingerprint="fp:new-cut"), "TV/a.mkv", TranscodeReason.NEW)],
        id="replacement-of-a-vanished-source-is-encoded-not-adopting-the-old-output",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE, preset_hash="tv-preset-v0")),
        [Drift("tv", EPISODE.rel_path, EPISODE_OUT, DriftReason.PRESET_CHANGED)],
        id="preset-changed-with-keep-reports-drift-and-keeps-the-output",
    ),
    pytest.param(
        _config(_library(on_preset_change="reencode")),
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE, preset_hash="tv-preset-v0")),
        [Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.PRESET_CHANGED)],
        id="preset-changed-with-reencode-is-re-encoded",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[EPISODE_OUT], preset_hashes={}),
        _ledger(_done(EPISODE, preset_hash="tv-preset-v0")),
        [],
        id="no-preset-hash-known-reports-no-drift",
    ),
    pytest.param(
        _config(tv_container="mp4"),
        _disk(EPISODE, outputs=[EPISODE_OUT], preset_hashes={}),
        _ledger(_done(EPISODE)),
        [Drift("tv", EPISODE.rel_path, EPISODE_OUT, DriftReason.PRESET_CHANGED)],
        id="container-changed-with-keep-is-drift-not-a-rename",
    ),
    pytest.param(
        CONFIG,
        _disk(COPIED, outputs=[COPIED_OUT]),
        _ledger(_done(COPIED, output=COPIED_OUT, preset_hash=_copied())),
        [],
        id="a-source-a-rule-copied-keeps-its-extension-and-is-in-sync",
    ),
    pytest.param(
        CONFIG,
        _disk(COPIED, outputs=[COPIED_OUT]),
        _ledger(_done(COPIED, output=COPIED_OUT, preset_hash=_copied("tv-preset-v0"))),
        [Drift("tv", COPIED.rel_path, COPIED_OUT, DriftReason.PRESET_CHANGED)],
        id="a-copy-made-under-another-preset-or-rules-is-drift",
    ),
    pytest.param(
        CONFIG,
        _disk(COPIED, outputs=[COPIED_OUT]),
        _ledger(_done(COPIED, output=COPIED_OUT, preset_hash=_copied(rules=LEAVE_HEVC_ALONE))),
        [Drift("tv", COPIED.rel_path, COPIED_OUT, DriftReason.PRESET_CHANGED)],
        id="a-copy-whose-rule-was-removed-is-drift",
    ),
    pytest.param(
        _config(_library(rules=LEAVE_HEVC_ALONE, on_preset_change="reencode")),
        _disk(COPIED, outputs=[COPIED_OUT]),
        _ledger(_done(COPIED, output=COPIED_OUT, preset_hash=_copied())),
        [Transcode("tv", COPIED, "TV/Show/S01E04.mkv", TranscodeReason.PRESET_CHANGED)],
        id="a-copy-whose-rules-changed-is-decided-again-with-reencode",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, outputs=[]),
        _ledger(_done(EPISODE, preset_hash=_copied(mark=SKIP_MARK))),
        [Skip("tv", EPISODE.rel_path, "its encode saved too little (larger_output: skip); nothing published")],
        id="an-encode-that-saved-too-little-with-skip-is-not-encoded-again",
    ),
    pytest.param(
        _config(_library(larger_output={"then": "copy"}, on_preset_change="reencode")),
        _disk(EPISODE, outputs=[]),
        _ledger(_done(EPISODE, preset_hash=_copied(mark=SKIP_MARK, larger_output={"then": "skip"}))),
        [Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.PRESET_CHANGED)],
        id="a-skip-whose-larger-output-changed-is-decided-again-with-reencode",
    ),
    pytest.param(
        CONFIG,
        _disk(COPIED, outputs=[]),
        _ledger(_done(COPIED, output=COPIED_OUT, preset_hash=_copied())),
        [Transcode("tv", COPIED, "TV/Show/S01E04.mkv", TranscodeReason.OUTPUT_MISSING)],
        id="a-copy-gone-from-the-archive-is-decided-again",
    ),
    pytest.param(
        _config(_library(on_preset_change="reencode"), tv_container="mp4"),
        _disk(EPISODE, outputs=[EPISODE_OUT], preset_hashes={}),
        _ledger(_done(EPISODE)),
        [Transcode("tv", EPISODE, "TV/Show/S01E01.mp4", TranscodeReason.PRESET_CHANGED)],
        id="container-changed-with-reencode-encodes-the-new-container",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, OTHER, outputs=[EPISODE_OUT, _out(OTHER.rel_path), _out(THIRD.rel_path)]),
        _ledger(_done(EPISODE), _done(OTHER), _done(THIRD)),
        [Drift("tv", THIRD.rel_path, _out(THIRD.rel_path), DriftReason.SOURCE_VANISHED)],
        id="orphan-output-whose-source-vanished-is-reported-and-kept",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, OTHER, outputs=[EPISODE_OUT, _out(OTHER.rel_path)]),
        _ledger(_done(EPISODE), _done(OTHER), _done(THIRD)),
        [],
        id="vanished-source-whose-output-is-gone-too-needs-nothing",
    ),
    pytest.param(
        CONFIG,
        _disk(
            _file("Movies/a.mkv"),
            _file("Movies/b.mkv"),
            outputs=["TV/Hidden/x.mkv", "TV/Movies/a.mkv", "TV/Movies/b.mkv"],
            problems=[ScanProblem("Hidden", "folder unreadable: Permission denied")],
            unreadable_dirs=["Hidden"],
        ),
        _ledger(_done(_file("Hidden/x.mkv")), _done(_file("Movies/a.mkv")), _done(_file("Movies/b.mkv"))),
        [Skip("tv", "Hidden", "folder unreadable")],
        id="files-under-an-unreadable-folder-are-not-reported-as-vanished",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi"), _file("a.mp4")),
        _ledger(),
        [
            Transcode("tv", _file("a.avi"), "TV/a.mkv", TranscodeReason.NEW),
            Skip("tv", "a.mp4", "a.avi"),
        ],
        id="two-sources-for-one-output-encode-the-first-and-skip-the-other-naming-it",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("a.avi"), _file("a.mp4"), outputs=["TV/a.mkv"]),
        _ledger(_done(_file("a.mp4"))),
        [Skip("tv", "a.avi", "a.mp4")],
        id="the-source-already-recorded-keeps-its-output-against-a-newcomer",
    ),
    pytest.param(
        _config(_library(output="Series")),
        _disk(EPISODE, outputs=[EPISODE_OUT], folders=["TV"]),
        _ledger(_done(EPISODE)),
        [RenameOutput("tv", EPISODE, EPISODE.rel_path, EPISODE_OUT, "Series/Show/S01E01.mkv")],
        id="library-output-folder-renamed-in-config-moves-the-existing-output",
    ),
    pytest.param(
        _config(_library(output="Series")),
        _disk(_file("x.avi"), _file("x.mp4"), outputs=["TV/x.mkv"]),
        _ledger(_done(_file("x.mp4"), output="TV/x.mkv")),
        [
            Skip("tv", "x.avi", "already belongs to x.mp4"),
            RenameOutput("tv", _file("x.mp4"), "x.mp4", "TV/x.mkv", "Series/x.mkv"),
        ],
        id="newcomer-cannot-take-the-output-a-recorded-source-is-moving-to",
    ),
    pytest.param(
        _config(tv_container="mp4"),
        _disk(_file("a.avi"), _file("a.mkv"), outputs=["TV/a.mkv"], preset_hashes={}),
        _ledger(_done(_file("a.mkv"))),
        [
            Skip("tv", "a.avi", "already belongs to a.mkv"),
            Drift("tv", "a.mkv", "TV/a.mkv", DriftReason.PRESET_CHANGED),
        ],
        id="newcomer-cannot-take-the-new-container-path-of-a-drifted-source",
    ),
    pytest.param(
        CONFIG,
        _disk(RENAMED, outputs=[EPISODE_OUT, "TV/Show/Season 1/Pilot.mkv"]),
        _ledger(_done(EPISODE)),
        [
            Adopt("tv", RENAMED, "TV/Show/Season 1/Pilot.mkv"),
            Drift("tv", EPISODE.rel_path, EPISODE_OUT, DriftReason.SOURCE_VANISHED),
        ],
        id="rename-onto-an-output-hb2r-did-not-make-adopts-it-instead-of-overwriting",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("b/a.mkv", fingerprint="fp:a"), outputs=["TV/a.mkv", "TV/b/a.mkv"]),
        _ledger(_done(_file("a.mkv", fingerprint="fp:a")), _done(_file("b/a.avi", fingerprint="fp:old-b"))),
        [RenameOutput("tv", _file("b/a.mkv", fingerprint="fp:a"), "a.mkv", "TV/a.mkv", "TV/b/a.mkv")],
        id="rename-may-replace-the-stale-output-of-another-vanished-source",
    ),
    pytest.param(
        CONFIG,
        _disk(
            _file("B/copy.mkv", fingerprint="fp:x"), _file("A/copy.mkv", fingerprint="fp:x"), outputs=["TV/Old/a.mkv"]
        ),
        _ledger(_done(_file("Old/a.mkv", fingerprint="fp:x"))),
        [
            RenameOutput("tv", _file("A/copy.mkv", fingerprint="fp:x"), "Old/a.mkv", "TV/Old/a.mkv", "TV/A/copy.mkv"),
            Transcode("tv", _file("B/copy.mkv", fingerprint="fp:x"), "TV/B/copy.mkv", TranscodeReason.NEW),
        ],
        id="two-copies-of-a-moved-file-in-two-folders-the-first-folder-takes-the-output-the-other-is-encoded",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("c/x.mkv", fingerprint="fp:x"), outputs=["TV/b/x.mkv", "TV/a/x.mkv"]),
        _ledger(_done(_file("b/x.mkv", fingerprint="fp:x")), _done(_file("a/x.mkv", fingerprint="fp:x"))),
        [
            RenameOutput("tv", _file("c/x.mkv", fingerprint="fp:x"), "a/x.mkv", "TV/a/x.mkv", "TV/c/x.mkv"),
            Drift("tv", "b/x.mkv", "TV/b/x.mkv", DriftReason.SOURCE_VANISHED),
        ],
        id="of-two-vanished-copies-the-first-by-path-is-renamed-the-other-drifts",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/Season 1/E01.mkv"), _file("Show/Top.mkv"), _file("Show A/E01.mkv")),
        _ledger(),
        [
            Transcode("tv", _file("Show/Top.mkv"), "TV/Show/Top.mkv", TranscodeReason.NEW),
            Transcode("tv", _file("Show A/E01.mkv"), "TV/Show A/E01.mkv", TranscodeReason.NEW),
            Transcode("tv", _file("Show/Season 1/E01.mkv"), "TV/Show/Season 1/E01.mkv", TranscodeReason.NEW),
        ],
        id="files-are-decided-by-folder-path-then-name",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, problems=[ScanProblem("Show/S01E0\\xff.mkv", "file name is not valid UTF-8")]),
        _ledger(),
        [
            Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.NEW),
            Skip("tv", "Show/S01E0\\xff.mkv", "not valid UTF-8"),
        ],
        id="file-with-a-bad-utf8-name-is-skipped-and-the-rest-goes-on",
    ),
]


@pytest.mark.parametrize(("config", "disk", "ledger", "expected"), LIBRARY_CASES)
def test_plan_decides_each_file(config: Config, disk: Observation, ledger: Ledger, expected: list[Action]) -> None:
    _assert_actions(_plan(config, disk, ledger), expected)


# --- the circuit breaker: a library that looks emptied is paused, not "deleted" ---------------

FOUR_RECORDED = [_file(f"e{number}.mkv") for number in range(4)]
TEN_SEEN_FILES = [_file(f"e{number}.mkv") for number in range(10)]


def _outputs(files: Iterable[SourceFile]) -> list[str]:
    return [_out(source.rel_path) for source in files]


VISIBLE = [_file(f"Seen/{number}.mkv") for number in range(3)]
HIDDEN = [_file(f"Hidden/{number}.mkv") for number in range(7)]
UNREADABLE = ScanProblem("Hidden", "folder unreadable: Permission denied")


def _seen(files: Iterable[SourceFile]) -> dict[tuple[str, str], SeenFile]:
    """The scan memory after a scan that saw `files` unchanged since long ago."""
    return {("tv", source.rel_path): SeenFile(source.size, source.mtime_ns, None, None) for source in files}


BREAKER_CASES = [
    pytest.param(
        CONFIG,
        Observation({"tv": _tv(status=SourceStatus.MISSING)}, ArchiveObservation(True, frozenset(), frozenset({"TV"}))),
        _ledger(*map(_done, FOUR_RECORDED)),
        [PauseLibrary("tv", "source folder missing")],
        id="source-folder-missing-pauses-and-reports-no-vanished-file",
    ),
    pytest.param(
        CONFIG,
        Observation({}, ArchiveObservation(True, frozenset(), frozenset({"TV"}))),
        _ledger(),
        [PauseLibrary("tv", "missing")],
        id="library-the-scan-did-not-report-is-paused",
    ),
    pytest.param(
        CONFIG,
        _disk(libraries={"tv": LibraryObservation("tv", SourceStatus.UNREADABLE, detail="Permission denied")}),
        _ledger(),
        [PauseLibrary("tv", "Permission denied")],
        id="source-folder-unreadable-pauses-with-the-cause",
    ),
    pytest.param(
        CONFIG,
        _disk(*TEN_SEEN_FILES[:3], _file("new.mkv"), outputs=_outputs(TEN_SEEN_FILES)),
        _ledger(*map(_done, TEN_SEEN_FILES), file_counts={"tv": 10}),
        [PauseLibrary("tv", "6 of 10 files vanished")],
        id="file-count-fell-by-more-than-max-vanish-percent-pauses-even-new-files",
    ),
    pytest.param(
        CONFIG,
        _disk(*TEN_SEEN_FILES[:5], outputs=_outputs(TEN_SEEN_FILES[:5])),
        _ledger(*map(_done, TEN_SEEN_FILES[:5]), file_counts={"tv": 10}),
        [],
        id="file-count-fell-by-exactly-max-vanish-percent-is-not-paused",
    ),
    pytest.param(
        _config(max_vanish_percent=20),
        _disk(*TEN_SEEN_FILES[:7], outputs=_outputs(TEN_SEEN_FILES[:7])),
        _ledger(*map(_done, TEN_SEEN_FILES[:7]), file_counts={"tv": 10}),
        [PauseLibrary("tv", "3 of 10 files vanished")],
        id="max-vanish-percent-from-the-config-is-the-threshold",
    ),
    pytest.param(
        CONFIG,
        _disk(FOUR_RECORDED[0], outputs=_outputs(FOUR_RECORDED)),
        _ledger(*map(_done, FOUR_RECORDED)),
        [PauseLibrary("tv", "3 of 4 files vanished")],
        id="without-a-recorded-scan-the-baseline-is-the-ledger-entries",
    ),
    pytest.param(
        CONFIG,
        _disk(),
        _ledger(),
        [],
        id="empty-library-that-was-always-empty-is-not-paused",
    ),
    pytest.param(
        CONFIG,
        _disk(*VISIBLE, outputs=_outputs(VISIBLE + HIDDEN), unreadable_dirs=["Hidden"], problems=[UNREADABLE]),
        _ledger(*map(_done, VISIBLE + HIDDEN), seen=_seen(VISIBLE + HIDDEN), file_counts={"tv": 10}),
        [Skip("tv", "Hidden", "folder unreadable")],
        id="files-hidden-by-an-unreadable-folder-do-not-trip-the-breaker",
    ),
    pytest.param(
        CONFIG,
        _disk(*VISIBLE, outputs=_outputs(VISIBLE + HIDDEN), unreadable_dirs=["Hidden"], problems=[UNREADABLE]),
        _ledger(*map(_done, VISIBLE + HIDDEN)),
        [Skip("tv", "Hidden", "folder unreadable")],
        id="files-hidden-by-an-unreadable-folder-do-not-trip-the-breaker-before-any-scan",
    ),
    pytest.param(
        CONFIG,
        _disk(outputs=_outputs(VISIBLE + HIDDEN[:1]), unreadable_dirs=["Hidden"]),
        _ledger(*map(_done, VISIBLE + HIDDEN[:1]), seen=_seen(VISIBLE + HIDDEN[:1]), file_counts={"tv": 4}),
        [PauseLibrary("tv", "3 of 4 files vanished")],
        id="an-unreadable-folder-does-not-mask-files-that-really-vanished",
    ),
    pytest.param(
        CONFIG,
        _disk(*FOUR_RECORDED, folders=[]),
        _ledger(*map(_done, FOUR_RECORDED)),
        [PauseLibrary("tv", "output folder 'TV' is missing")],
        id="output-folder-gone-while-transcodes-are-recorded-in-it-pauses",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, folders=[]),
        _ledger(),
        [Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.NEW)],
        id="output-folder-not-made-yet-for-a-fresh-library-is-fine",
    ),
    pytest.param(
        CONFIG,
        _disk(EPISODE, archive_available=False),
        _ledger(),
        [PauseLibrary("tv", "archive unavailable")],
        id="archive-unavailable-pauses-the-library",
    ),
]


@pytest.mark.parametrize(("config", "disk", "ledger", "expected"), BREAKER_CASES)
def test_plan_pauses_a_library_that_looks_unmounted(
    config: Config, disk: Observation, ledger: Ledger, expected: list[Action]
) -> None:
    _assert_actions(_plan(config, disk, ledger), expected)


TWO_LIBRARIES = _config(_library("tv"), _library("movies"))
FILM = _file("Film (2020).mkv", fingerprint="fp:film")


def test_missing_source_pauses_only_its_own_library() -> None:
    disk = Observation(
        libraries={
            "tv": _tv(status=SourceStatus.MISSING),
            "movies": LibraryObservation("movies", SourceStatus.OK, files=(FILM,)),
        },
        archive=ArchiveObservation(True, frozenset({EPISODE_OUT}), frozenset({"TV", "Movies"})),
    )
    result = _plan(TWO_LIBRARIES, disk, _ledger(_done(EPISODE)))

    _assert_actions(
        result,
        [
            PauseLibrary("tv", "source folder missing"),
            Transcode("movies", FILM, "Movies/Film (2020).mkv", TranscodeReason.NEW),
        ],
    )


def test_unavailable_archive_pauses_every_library() -> None:
    disk = Observation(
        libraries={"tv": _tv(EPISODE), "movies": LibraryObservation("movies", SourceStatus.OK, files=(FILM,))},
        archive=ArchiveObservation(available=False, detail="/archive is missing (not mounted?)"),
    )
    result = _plan(TWO_LIBRARIES, disk, _ledger(_done(EPISODE)))

    _assert_actions(result, [PauseLibrary("tv", "archive unavailable"), PauseLibrary("movies", "archive unavailable")])
    first = result.actions[0]
    assert isinstance(first, PauseLibrary) and "/archive is missing" in first.reason


def test_rename_is_recognised_only_within_one_library() -> None:
    moved_to_tv = _file("Film (2020).mkv", fingerprint=FILM.fingerprint)
    disk = Observation(
        libraries={"tv": _tv(moved_to_tv), "movies": LibraryObservation("movies", SourceStatus.OK, files=(OTHER,))},
        archive=ArchiveObservation(True, frozenset({"Movies/Film (2020).mkv"}), frozenset({"TV", "Movies"})),
    )
    ledger = _ledger(_done(FILM, library="movies", output="Movies/Film (2020).mkv"))

    _assert_actions(
        _plan(TWO_LIBRARIES, disk, ledger),
        [
            Transcode("tv", moved_to_tv, "TV/Film (2020).mkv", TranscodeReason.NEW),
            Transcode("movies", OTHER, "Movies/Show/S01E02.mkv", TranscodeReason.NEW),
            Drift("movies", FILM.rel_path, "Movies/Film (2020).mkv", DriftReason.SOURCE_VANISHED),
        ],
    )


# --- users ----------------------------------------------------------------------------------

USER_CASES = [
    pytest.param(
        [{"name": "admin", "role": "admin", "password_hash": ADMIN_HASH}],
        [],
        [UserChange(UserChangeKind.ADD, "admin", "admin", ADMIN_HASH)],
        id="user-in-config-but-not-stored-is-added",
    ),
    pytest.param(
        [{"name": "kim", "role": "admin", "password_hash": ADMIN_HASH}],
        [UserRecord("kim", "user", ADMIN_HASH)],
        [UserChange(UserChangeKind.UPDATE, "kim", "admin", ADMIN_HASH)],
        id="user-whose-role-changed-is-updated",
    ),
    pytest.param(
        [{"name": "kim", "role": "user", "password_hash": OTHER_HASH}],
        [UserRecord("kim", "user", ADMIN_HASH)],
        [UserChange(UserChangeKind.UPDATE, "kim", "user", OTHER_HASH)],
        id="user-whose-password-hash-changed-is-updated",
    ),
    pytest.param(
        [],
        [UserRecord("kim", "user", ADMIN_HASH)],
        [UserChange(UserChangeKind.REMOVE, "kim", "user")],
        id="stored-user-no-longer-in-config-is-removed",
    ),
    pytest.param(
        [{"name": "kim", "role": "user", "password_hash": ADMIN_HASH}],
        [UserRecord("kim", "user", ADMIN_HASH)],
        [],
        id="unchanged-user-needs-nothing",
    ),
    pytest.param(
        [],
        [UserRecord("admin", "admin", ADMIN_HASH, generated=True), UserRecord("kim", "user", ADMIN_HASH)],
        [UserChange(UserChangeKind.REMOVE, "kim", "user")],
        id="generated-admin-stays-while-the-config-declares-no-users",
    ),
    pytest.param(
        [{"name": "kim", "role": "admin", "password_hash": OTHER_HASH}],
        [UserRecord("admin", "admin", ADMIN_HASH, generated=True)],
        [
            UserChange(UserChangeKind.REMOVE, "admin", "admin"),
            UserChange(UserChangeKind.ADD, "kim", "admin", OTHER_HASH),
        ],
        id="first-declared-user-replaces-the-generated-admin",
    ),
]


@pytest.mark.parametrize(("desired", "stored", "expected"), USER_CASES)
def test_plan_makes_stored_users_match_the_config(
    desired: list[dict[str, str]], stored: list[UserRecord], expected: list[UserChange]
) -> None:
    config = Config.model_validate(
        {"version": 1, "paths": {"archive": "/archive"}, "users": desired}, context={"base_dir": "/"}
    )
    result = plan(config, _disk(libraries={}), _ledger(users=stored), now_ns=NOW)

    assert list(result.actions) == expected  # equality covers the password hash to store


# --- level-triggered: same facts, same plan; once carried out, nothing is left --------------


CARRY_OUT_CASES = [
    pytest.param(CONFIG, _disk(EPISODE), _ledger(), id="new-file-once-transcoded"),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", size=2 * MB, age=600, fingerprint="fp:recut"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        id="changed-source-once-re-encoded",
    ),
    pytest.param(CONFIG, _disk(EPISODE), _ledger(_done(EPISODE)), id="missing-output-once-re-encoded"),
    pytest.param(CONFIG, _disk(RENAMED, outputs=[EPISODE_OUT]), _ledger(_done(EPISODE)), id="rename-once-moved"),
    pytest.param(CONFIG, _disk(EPISODE, outputs=[EPISODE_OUT]), _ledger(), id="existing-output-once-adopted"),
    pytest.param(
        _config(_library(output="Series")),
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        id="output-folder-rename-once-moved",
    ),
    pytest.param(
        _config(_library(on_preset_change="reencode")),
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE, preset_hash="tv-preset-v0")),
        id="preset-change-once-re-encoded",
    ),
    pytest.param(
        _config(_library(on_preset_change="reencode"), tv_container="mp4"),
        _disk(EPISODE, outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        id="container-change-once-re-encoded",
    ),
    pytest.param(CONFIG, _disk(_file("a.avi"), _file("a.mp4")), _ledger(), id="output-conflict-once-the-first-is-done"),
    pytest.param(
        _config(_library(output="Series")),
        _disk(_file("x.avi"), _file("x.mp4"), outputs=["TV/x.mkv"]),
        _ledger(_done(_file("x.mp4"), output="TV/x.mkv")),
        id="output-folder-rename-beside-a-newcomer-once-moved",
    ),
    pytest.param(
        CONFIG,
        _disk(RENAMED, outputs=[EPISODE_OUT, "TV/Show/Season 1/Pilot.mkv"]),
        _ledger(_done(EPISODE)),
        id="rename-onto-a-foreign-output-once-adopted",
    ),
    pytest.param(
        _config(users=[{"name": "kim", "role": "admin", "password_hash": ADMIN_HASH}]),
        _disk(),
        _ledger(users=[UserRecord("old", "user", OTHER_HASH)]),
        id="user-changes-once-stored",
    ),
]


@pytest.mark.parametrize(("config", "disk", "ledger"), CARRY_OUT_CASES)
def test_once_the_plan_is_carried_out_nothing_is_pending(config: Config, disk: Observation, ledger: Ledger) -> None:
    first = _plan(config, disk, ledger)
    assert first.pending

    after_disk, after_ledger = _carry_out(config, first, disk, ledger)
    second = _plan(config, after_disk, after_ledger)

    assert not second.pending, second.actions
    assert _plan(config, after_disk, after_ledger) == second


def test_same_facts_give_the_same_plan_whatever_order_the_scan_listed_files_in() -> None:
    files = [_file("b.mkv"), _file("a.mp4"), RENAMED, _file("a.avi"), _file("c.mkv", age=5)]
    ledger = _ledger(_done(EPISODE), _done(THIRD))
    outputs = [EPISODE_OUT, _out(THIRD.rel_path)]

    first = _plan(CONFIG, _disk(*files, outputs=outputs), ledger)

    assert _plan(CONFIG, _disk(*files, outputs=outputs), ledger) == first
    assert _plan(CONFIG, _disk(*reversed(files), outputs=outputs), ledger) == first
    assert Skip("tv", "a.mp4", "its output TV/a.mkv already belongs to a.avi") in first.actions


PENDING_CASES = [
    pytest.param([], False, id="empty-plan-is-not-pending"),
    pytest.param([Wait("tv", "a.mkv", 30.0)], True, id="waiting-file-is-pending-work-follows"),
    pytest.param([Transcode("tv", EPISODE, EPISODE_OUT, TranscodeReason.NEW)], True, id="transcode-is-pending"),
    pytest.param([RenameOutput("tv", RENAMED, "a", "TV/a.mkv", "TV/b.mkv")], True, id="rename-is-pending"),
    pytest.param([Adopt("tv", EPISODE, EPISODE_OUT)], True, id="adopt-is-pending"),
    pytest.param([UserChange(UserChangeKind.ADD, "kim", "user", ADMIN_HASH)], True, id="user-change-is-pending"),
    pytest.param(
        [Drift("tv", "a.mkv", "TV/a.mkv", DriftReason.PRESET_CHANGED)], False, id="drift-alone-is-only-a-report"
    ),
    pytest.param([Skip("tv", "a.mkv", "empty file (0 bytes)")], False, id="skip-alone-is-only-a-report"),
    pytest.param([PauseLibrary("tv", "source folder missing")], False, id="pause-alone-is-only-a-report"),
    pytest.param(
        [PauseLibrary("tv", "source folder missing"), Wait("movies", "a.mkv", 1.0)],
        True,
        id="pause-beside-a-wait-is-pending",
    ),
]


@pytest.mark.parametrize(("actions", "pending"), PENDING_CASES)
def test_plan_is_pending_only_when_work_will_follow(actions: list[Action], pending: bool) -> None:
    assert Plan(tuple(actions)).pending is pending


# --- which files the scan must read to fingerprint ------------------------------------------

FINGERPRINT_CASES = [
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", age=600), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        {("tv", "Show/S01E01.mkv")},
        id="recorded-file-whose-mtime-moved-is-read",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", size=2 * MB), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        {("tv", "Show/S01E01.mkv")},
        id="recorded-file-whose-size-moved-is-read",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        set(),
        id="recorded-file-with-same-size-and-mtime-is-not-read",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/Season 1/Pilot.mkv"), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        {("tv", "Show/Season 1/Pilot.mkv")},
        id="new-file-as-large-as-a-vanished-one-is-read-to-spot-a-rename",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/Season 1/Pilot.mkv", size=3 * MB), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        set(),
        id="new-file-of-another-size-is-not-read",
    ),
    pytest.param(
        CONFIG,
        _disk(*(_file(f"e{number}.mkv") for number in range(5))),
        _ledger(),
        set(),
        id="fresh-library-reads-nothing",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", size=2 * MB, age=10), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        set(),
        id="recorded-file-still-being-written-is-not-read-yet",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/Season 1/Pilot.mkv", age=10), outputs=[EPISODE_OUT]),
        _ledger(_done(EPISODE)),
        set(),
        id="possible-rename-still-being-copied-is-not-read-yet",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("Show/S01E01.mkv", age=600), archive_available=False),
        _ledger(_done(EPISODE)),
        set(),
        id="nothing-is-read-in-a-library-paused-for-a-missing-archive",
    ),
    pytest.param(
        CONFIG,
        _disk(_file("new.mkv"), outputs=_outputs(FOUR_RECORDED)),
        _ledger(*map(_done, FOUR_RECORDED)),
        set(),
        id="nothing-is-read-in-a-library-paused-by-the-vanish-breaker",
    ),
    pytest.param(
        CONFIG,
        _disk(
            _file("Other/a.mkv"),
            _file("Other/b.mkv"),
            _file("Other/c.mkv"),
            outputs=["TV/Hidden/x.mkv"],
            unreadable_dirs=["Hidden"],
        ),
        _ledger(_done(_file("Hidden/x.mkv"))),
        set(),
        id="files-hidden-by-an-unreadable-folder-do-not-count-as-vanished",
    ),
]


@pytest.mark.parametrize(("config", "disk", "ledger", "expected"), FINGERPRINT_CASES)
def test_fingerprints_are_read_only_where_the_plan_depends_on_them(
    config: Config, disk: Observation, ledger: Ledger, expected: set[tuple[str, str]]
) -> None:
    assert fingerprints_needed(config, disk, ledger, now_ns=NOW) == expected


def test_a_vanished_file_in_another_library_makes_nothing_read() -> None:
    disk = Observation(
        libraries={"tv": _tv(_file("Film (2020).mkv")), "movies": LibraryObservation("movies", SourceStatus.OK)},
        archive=ArchiveObservation(True, frozenset({"Movies/Film (2020).mkv"}), frozenset({"TV", "Movies"})),
    )
    ledger = _ledger(_done(FILM, library="movies", output="Movies/Film (2020).mkv"))

    assert fingerprints_needed(TWO_LIBRARIES, disk, ledger, now_ns=NOW) == set()
