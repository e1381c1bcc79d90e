"""The multi-host checks (tests/multihost_checks.py) on hand-written agent logs: they must catch
two live leases on one job, a fence reused or going back, and a leader epoch that did not grow,
and must not cry wolf at a claim made the instant a lease expired or after a release."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from multihost import _run_of
from multihost_checks import (
    CLAIMED,
    ENDED,
    LEADER,
    RENEWED,
    double_leases,
    leader_epoch_problems,
    lease_spans,
    ledger_problems,
    read_log,
    temp_files,
)

LEASE = timedelta(seconds=3)


def at(seconds: float) -> str:
    return f"2026-12-01T12:00:{seconds:09.6f}+00:00"


def claimed(job: int, fence: int, host: str, expires: float) -> dict[str, Any]:
    return {"event": CLAIMED, "job": job, "fence": fence, "host": host, "expires_at": at(expires)}


def renewed(job: int, fence: int, host: str, expires: float) -> dict[str, Any]:
    return {"event": RENEWED, "job": job, "fence": fence, "host": host, "expires_at": at(expires)}


def ended(job: int, fence: int, host: str, reason: str, when: float | None) -> dict[str, Any]:
    entry = {"event": ENDED, "job": job, "fence": fence, "host": host, "reason": reason}
    return entry | ({"ended_at": at(when)} if when is not None else {})


def test_a_claim_after_expiry_and_one_after_a_release_are_fine() -> None:
    log = [
        claimed(1, 10, "nas1", expires=3),  # held 0..3, renewed to 5, then nas1 froze
        renewed(1, 10, "nas1", expires=5),
        claimed(1, 11, "desktop", expires=8),  # claimed at 5: the instant the lease expired
        ended(1, 11, "desktop", "released", when=6),
        claimed(1, 12, "mini", expires=9.5),  # claimed at 6.5, after the release
        ended(1, 10, "nas1", "lost", when=None),  # nas1 woke up and learned it had lost the job
    ]

    spans = lease_spans(log, lease=LEASE)

    assert [(span.fence, span.host, span.ended_by) for span in spans] == [
        (10, "nas1", "lost"),
        (11, "desktop", "released"),
        (12, "mini", None),
    ]
    assert double_leases(spans) == []


def test_a_claim_while_a_renewed_lease_is_live_is_caught() -> None:
    log = [
        claimed(1, 10, "nas1", expires=3),
        renewed(1, 10, "nas1", expires=5),  # without this renewal the overlap would be invisible
        claimed(1, 11, "desktop", expires=7),  # claimed at 4: nas1 held it until 5
        claimed(2, 12, "mini", expires=3),  # another job: no conflict
    ]

    problems = double_leases(lease_spans(log, lease=LEASE))

    assert len(problems) == 1
    assert problems[0].startswith("job 1: fence 11 (desktop) claimed at 2026-12-01T12:00:04")
    assert "fence 10 (nas1) was live until 2026-12-01T12:00:05" in problems[0]


def test_a_release_ends_the_lease_before_its_expiry_but_not_later() -> None:
    log = [
        claimed(1, 10, "nas1", expires=3),
        ended(1, 10, "nas1", "released", when=2),
        claimed(1, 11, "desktop", expires=4.5),  # claimed at 1.5: before the release at 2
    ]

    assert len(double_leases(lease_spans(log, lease=LEASE))) == 1


def test_a_fence_claimed_twice_or_going_back_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"fences claimed more than once: \[10\]"):
        lease_spans([claimed(1, 10, "nas1", expires=3), claimed(2, 10, "desktop", expires=9)], lease=LEASE)

    spans = lease_spans([claimed(1, 10, "nas1", expires=3), claimed(1, 9, "desktop", expires=9)], lease=LEASE)
    assert double_leases(spans) == ["job 1: fence 9 claimed after fence 10"]


def test_leader_epochs_must_grow_across_hosts_in_time_order() -> None:
    log = [
        {"event": LEADER, "host": "nas1", "epoch": 1, "timestamp": "2026-12-01T12:00:00Z"},
        {"event": LEADER, "host": "desktop", "epoch": 2, "timestamp": "2026-12-01T12:00:05Z"},
        {"event": "job claimed noise", "host": "mini", "timestamp": "2026-12-01T12:00:06Z"},
    ]
    assert leader_epoch_problems(log) == []

    stale = {"event": LEADER, "host": "nas1", "epoch": 2, "timestamp": "2026-12-01T12:00:09Z"}
    assert leader_epoch_problems([*log, stale]) == [
        "nas1 elected with epoch 2 at 2026-12-01T12:00:09+00:00 after desktop's 2"
    ]


def test_the_log_reader_keeps_json_objects_and_skips_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    entry = claimed(1, 10, "nas1", expires=3)
    log.write_text(f"{json.dumps(entry)}\nTraceback (most recent call last):\n[1, 2]\n{{broken\n")

    assert read_log(log) == [entry]


def test_ledger_rows_must_be_one_per_source() -> None:
    rows = [("tv", "a.mkv"), ("tv", "c.mkv")]

    assert ledger_problems(rows, library_name="tv", sources=["a.mkv", "c.mkv"]) == []
    assert ledger_problems(rows, library_name="tv", sources=["a.mkv", "b.mkv"]) == [
        "tv/b.mkv: no ledger row",
        "tv/c.mkv: a ledger row for no source",
    ]


def test_temp_files_are_listed(tmp_path: Path) -> None:
    assert temp_files(tmp_path) == []
    (tmp_path / ".hb2r-partial").mkdir()
    assert temp_files(tmp_path) == []
    (tmp_path / ".hb2r-partial" / "nas1.7.10.mkv").write_bytes(b"x")
    assert temp_files(tmp_path) == ["nas1.7.10.mkv"]


@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("h2n17br", "h2n17"),
        ("h2n17v3", "h2n17"),
        ("h2n17-nas1", "h2n17"),
        ("h2n17", "h2n17"),
        ("h2n256", None),  # no such 10.213.N.0/24
        ("h2n17x", None),
        ("eth0", None),
        ("h2nbr", None),
    ],
)
def test_only_names_of_the_harness_runs_are_ever_cleaned(name: str, run: str | None) -> None:
    assert _run_of(name) == run
