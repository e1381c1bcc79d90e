"""Decision table: may a folder's remembered listing stand, or must the pass list it again?"""

from __future__ import annotations

import pytest

from agent.domain import FolderVisit, RememberedFolder, SourceFile
from agent.incremental_scan import RACY_NS, Missed, full_pass_due, listing_stands, missed_changes

S = 1_000_000_000
NOW = 1_750_000_000 * S
SETTLE = 60 * S
HOUR = 3600 * S
LISTED = NOW - HOUR  # the folder was last listed an hour ago
CHANGED = NOW - 2 * HOUR  # and had last changed an hour before that


def remembered(**changes: object) -> RememberedFolder:
    base = RememberedFolder("8:1", CHANGED, CHANGED, False, False, 3, LISTED, CHANGED)
    return base._replace(**changes)


def now(**changes: object) -> FolderVisit:
    base = FolderVisit("Show", "8:1", CHANGED, CHANGED, False, NOW)
    return base._replace(**changes)


@pytest.mark.parametrize(
    ("memory", "visit", "stands"),
    [
        pytest.param(remembered(), now(), True, id="unchanged-folder-is-not-listed"),
        pytest.param(remembered(), now(mtime_ns=NOW - 5 * S), False, id="entry-made-or-removed-moves-the-mtime"),
        pytest.param(remembered(), now(ctime_ns=NOW - 5 * S), False, id="chmod-moves-only-the-ctime"),
        pytest.param(remembered(), now(identity="9:1"), False, id="a-disk-mounted-over-it-is-another-folder"),
        pytest.param(remembered(), now(via_link=True), False, id="now-reached-through-a-symlink"),
        pytest.param(remembered(problems=True), now(), False, id="a-folder-whose-listing-had-a-problem-is-listed"),
        pytest.param(
            remembered(mtime_ns=LISTED - RACY_NS // 2), now(mtime_ns=LISTED - RACY_NS // 2), False,
            id="changed-just-before-its-listing-it-may-hide-a-change-in-the-same-tick",
        ),
        pytest.param(
            remembered(mtime_ns=LISTED - 2 * RACY_NS), now(mtime_ns=LISTED - 2 * RACY_NS), True,
            id="changed-well-before-its-listing-is-not-racy",
        ),
        pytest.param(
            remembered(newest_change_ns=NOW - SETTLE + S), now(), False, id="a-file-in-it-is-still-settling",
        ),
        pytest.param(remembered(newest_change_ns=NOW - SETTLE), now(), True, id="its-files-have-just-settled"),
    ],
)  # fmt: skip
def test_a_remembered_listing_stands_only_while_nothing_in_the_folder_can_have_changed(
    memory: RememberedFolder, visit: FolderVisit, stands: bool
) -> None:
    assert listing_stands(memory, visit, now_ns=NOW, settle_ns=SETTLE) is stands


def test_files_settle_for_at_least_the_racy_window_even_with_stable_after_zero() -> None:
    memory = remembered(newest_change_ns=NOW - RACY_NS + S)
    assert listing_stands(memory, now(), now_ns=NOW, settle_ns=0) is False


def test_a_full_pass_counts_what_differs_only_in_the_folders_an_incremental_pass_would_have_kept() -> None:
    remembered = {
        "Kept": [SourceFile("Kept/same.mkv", 1, 1, 1), SourceFile("Kept/rewritten.mkv", 1, 1, 1),
                 SourceFile("Kept/gone.mkv", 1, 1, 1)],
        "Listed": [SourceFile("Listed/gone.mkv", 1, 1, 1)],
    }  # fmt: skip
    walked = [
        SourceFile("Kept/same.mkv", 1, 1, 1),
        SourceFile("Kept/rewritten.mkv", 1, 2, 2),
        SourceFile("Kept/Sub/new.mkv", 1, 1, 1),  # in a subfolder, listed anyway
        SourceFile("Listed/new.mkv", 1, 1, 1),
    ]

    missed = missed_changes(remembered, walked, {"Kept"})

    assert missed == Missed(2, ("Kept/gone.mkv", "Kept/rewritten.mkv"))


@pytest.mark.parametrize(
    ("last", "now", "generation", "due"),
    [
        pytest.param(None, 100.0, 1, True, id="the-first-pass-after-start-is-full"),
        pytest.param((100.0, 1), 100.0 + 3599, 1, False, id="within-full-interval-passes-are-incremental"),
        pytest.param((100.0, 1), 100.0 + 3600, 1, True, id="full-interval-after-the-last-full-pass-is-full"),
        pytest.param((100.0, 1), 101.0, 2, True, id="the-first-pass-after-a-config-change-is-full"),
    ],
)
def test_a_full_pass_is_due_first_after_start_or_a_config_change_then_every_full_interval(
    last: tuple[float, int] | None, now: float, generation: int, due: bool
) -> None:
    assert full_pass_due(last, now=now, interval_seconds=3600, config_generation=generation) is due
