"""Decision tables for pairing the plan's transcodes with the queue's jobs (no I/O).

A row gives the plan's transcode of `tv/a.mkv` (content "fp-a", preset "p1"), the jobs the
store holds, and what `hb2r plan` must then say: the job it is paired with, its stage, and
whether the agent has work pending.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from agent.domain import (
    Drift,
    DriftReason,
    PauseLibrary,
    Plan,
    Skip,
    SourceFile,
    Transcode,
    TranscodeReason,
    UserChange,
    UserChangeKind,
    Wait,
)
from agent.queued_plan import COUNT_KEYS, QueuedPlan, Stage, files_with_jobs, with_jobs


class JobRow(NamedTuple):
    """The fields of a stored job that the pairing reads."""

    id: int
    state: str
    fingerprint: str = "fp-a"
    preset_hash: str = "p1"
    library: str = "tv"
    rel_path: str = "a.mkv"
    attempts: int = 0
    not_before: str | None = None
    error: str | None = None
    progress: float | None = None
    cancelled_by: str | None = None


A_UNREAD = Transcode("tv", SourceFile("a.mkv", 100, 1, 1, None), "TV/a.mkv", TranscodeReason.NEW)
A_READ = Transcode("tv", SourceFile("a.mkv", 100, 1, 1, "fp-a"), "TV/a.mkv", TranscodeReason.CHANGED)
FINGERPRINTS = {("tv", "a.mkv"): "fp-a"}
PRESETS = {"tv": "p1"}


@pytest.mark.parametrize(
    ("jobs", "paired", "stage", "pending"),
    [
        pytest.param([], None, Stage.TO_QUEUE, True, id="no-job-yet-is-to-be-queued"),
        pytest.param([JobRow(1, "queued")], 1, Stage.QUEUED, True, id="queued-is-pending"),
        pytest.param([JobRow(1, "running")], 1, Stage.RUNNING, True, id="running-is-pending"),
        pytest.param([JobRow(1, "failed")], 1, Stage.FAILED, True, id="failed-is-retried-so-pending"),
        pytest.param([JobRow(1, "dead")], 1, Stage.DEAD, False, id="dead-waits-for-an-operator-not-pending"),
        pytest.param(
            [JobRow(1, "cancelled", cancelled_by="operator")], 1, Stage.CANCELLED, False,
            id="cancelled-by-an-operator-waits-for-an-operator",
        ),
        pytest.param(
            [JobRow(1, "cancelled", cancelled_by="engine")], 1, Stage.TO_QUEUE, True,
            id="cancelled-by-a-pass-is-queued-again",
        ),
        pytest.param([JobRow(1, "done")], None, Stage.TO_QUEUE, True, id="done-but-output-lost-is-queued-again"),
        pytest.param(
            [JobRow(1, "dead", fingerprint="fp-old")], None, Stage.TO_QUEUE, True, id="old-content"
        ),
        pytest.param(
            [JobRow(1, "dead", preset_hash="p0")], None, Stage.TO_QUEUE, True, id="old-preset"
        ),
        pytest.param(
            [JobRow(1, "dead", library="movies")], None, Stage.TO_QUEUE, True, id="a-job-of-another-library-is-not-it"
        ),
        pytest.param(
            [JobRow(1, "dead", fingerprint="fp-old"), JobRow(2, "queued")],
            2,
            Stage.QUEUED,
            True,
            id="the-job-of-the-current-content-among-older-ones",
        ),
    ],
)
def test_a_transcode_is_paired_with_the_job_of_its_identity(
    jobs: list[JobRow], paired: int | None, stage: Stage, pending: bool
) -> None:
    queued = with_jobs(Plan((A_UNREAD,)), jobs, fingerprints=FINGERPRINTS, preset_hashes=PRESETS)

    job = queued.job_of(A_UNREAD)
    assert (None if job is None else job.id) == paired
    assert queued.stage_of(A_UNREAD) is stage
    assert queued.pending is pending


def test_the_plans_own_fingerprint_is_used_when_it_has_one() -> None:
    queued = with_jobs(Plan((A_READ,)), [JobRow(1, "dead")], fingerprints={}, preset_hashes=PRESETS)

    assert queued.stage_of(A_READ) is Stage.DEAD


def test_without_the_contents_fingerprint_no_job_is_claimed() -> None:
    queued = with_jobs(Plan((A_UNREAD,)), [JobRow(1, "dead")], fingerprints={}, preset_hashes=PRESETS)

    assert queued.stage_of(A_UNREAD) is Stage.TO_QUEUE
    assert queued.pending


def test_with_the_preset_identity_unknown_the_newest_job_of_the_content_stands_for_it() -> None:
    jobs = [JobRow(1, "dead", preset_hash="p0"), JobRow(2, "cancelled", preset_hash="p1", cancelled_by="operator")]

    queued = with_jobs(Plan((A_UNREAD,)), jobs, fingerprints=FINGERPRINTS, preset_hashes={})

    assert queued.stage_of(A_UNREAD) is Stage.CANCELLED


def test_a_transcode_with_a_preset_a_rule_chose_is_paired_with_the_job_of_its_content() -> None:
    hdr = A_READ._replace(why="hevc 10-bit 12.0 Mb/s: HDR10, hdr: hdr", preset="hdr")

    running = [JobRow(1, "running", preset_hash="p-hdr")]

    queued = with_jobs(Plan((hdr,)), running, fingerprints={}, preset_hashes=PRESETS)

    assert queued.stage_of(hdr) is Stage.RUNNING


@pytest.mark.parametrize(
    ("other", "pending"),
    [
        pytest.param(Wait("tv", "b.mkv", 30.0), True, id="a-waiting-file-beside-a-dead-one-is-pending"),
        pytest.param(UserChange(UserChangeKind.ADD, "kim", "user"), True, id="a-user-change-is-pending"),
        pytest.param(Skip("tv", "b.mkv", "empty file (0 bytes)"), False, id="a-skip-is-a-report"),
        pytest.param(Drift("tv", "b.mkv", "TV/b.mkv", DriftReason.SOURCE_VANISHED), False, id="drift-is-a-report"),
        pytest.param(PauseLibrary("movies", "source folder missing"), False, id="a-pause-is-a-report"),
    ],
)
def test_a_dead_transcode_leaves_pending_to_the_other_actions(other: object, pending: bool) -> None:
    plan = Plan((A_UNREAD, other))  # type: ignore[arg-type]

    queued = with_jobs(plan, [JobRow(1, "dead")], fingerprints=FINGERPRINTS, preset_hashes=PRESETS)

    assert queued.pending is pending


def test_counts_split_the_transcodes_by_stage_in_a_fixed_order() -> None:
    files = [f"{name}.mkv" for name in ("a", "b", "c", "d", "e", "f", "g")]
    transcodes = tuple(
        Transcode("tv", SourceFile(name, 1, 1, 1, f"fp-{name}"), f"TV/{name}", TranscodeReason.NEW) for name in files
    )
    jobs = [
        JobRow(1, "queued", fingerprint="fp-b.mkv", rel_path="b.mkv"),
        JobRow(2, "queued", fingerprint="fp-c.mkv", rel_path="c.mkv"),
        JobRow(3, "running", fingerprint="fp-d.mkv", rel_path="d.mkv"),
        JobRow(4, "failed", fingerprint="fp-e.mkv", rel_path="e.mkv"),
        JobRow(5, "dead", fingerprint="fp-f.mkv", rel_path="f.mkv"),
        JobRow(6, "cancelled", fingerprint="fp-g.mkv", rel_path="g.mkv", cancelled_by="operator"),
    ]

    queued = with_jobs(Plan((*transcodes, Wait("tv", "h.mkv", 1.0))), jobs, fingerprints={}, preset_hashes=PRESETS)

    assert list(queued.counts()) == list(COUNT_KEYS)
    assert {key: count for key, count in queued.counts().items() if count} == {
        "transcode": 1, "queued": 2, "running": 1, "failed": 1, "dead": 1, "cancelled": 1, "wait": 1,
    }  # fmt: skip


def test_only_transcodes_whose_file_has_a_job_need_their_fingerprint() -> None:
    b = Transcode("tv", SourceFile("b.mkv", 1, 1, 1), "TV/b.mkv", TranscodeReason.NEW)
    plan = Plan((A_UNREAD, b, Wait("tv", "c.mkv", 1.0)))

    needed = files_with_jobs(plan, [JobRow(1, "dead"), JobRow(2, "queued", rel_path="c.mkv")])

    assert needed == {("tv", "a.mkv")}


def test_a_plan_without_jobs_is_pending_as_the_planner_says() -> None:
    assert QueuedPlan(Plan((A_UNREAD,))).pending
    assert not QueuedPlan(Plan(())).pending
