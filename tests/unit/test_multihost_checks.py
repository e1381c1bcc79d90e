"""The multi-host checks (tests/support/multihost_checks.py) on hand-written audit rows and logs: they
must catch a job taken while its lease was live, a fence going back, a claim the hosts did not
log (or logged and the store never saw), a leader epoch that did not grow; and must not cry wolf
at a claim made the instant a lease expired or after a release."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.multihost import _run_of
from tests.support.multihost_checks import (
    CLAIMED,
    LEADER,
    AuditRow,
    ClaimKey,
    claim_problems,
    double_leases,
    leader_audit_problems,
    leader_epoch_problems,
    lease_spans,
    ledger_problems,
    logged_claims,
    temp_files,
)
from tests.support.outcomes import read_log

ZERO = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return ZERO + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    """lease_expires_at as the store writes it: ISO-8601 UTC text with microseconds."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit(*changes: tuple[float, str, dict[str, Any]]) -> list[AuditRow]:
    return [AuditRow(seq, at(when), table, row) for seq, (when, table, row) in enumerate(changes, start=1)]


def job(
    state: str, *, fence: int | None = None, host: str | None = None, expires: float | None = None, losses: int = 0
) -> dict[str, Any]:
    return {
        "id": 1,
        "state": state,
        "host": host,
        "lease_token": fence,
        "lease_expires_at": None if expires is None else stamp(expires),
        "host_losses": losses,
    }


def test_a_claim_at_the_instant_of_expiry_and_one_after_a_release_are_fine() -> None:
    changes = audit(
        (0, "jobs", job("queued")),
        (0, "jobs", job("running", fence=10, host="nas1", expires=3)),  # claimed at 0
        (1, "jobs", job("running", fence=10, host="nas1", expires=4)),  # renewed, then nas1 froze
        (4, "jobs", job("queued", losses=1)),  # expire_leases at 4: the lease had run out
        (4, "jobs", job("running", fence=11, host="desktop", expires=7, losses=1)),
        (5, "jobs", job("queued", losses=1)),  # desktop released it (its mount went missing) before expiry
        (5.5, "jobs", job("running", fence=12, host="mini", expires=8.5, losses=1)),
        (6, "jobs", job("done", fence=12, host="mini", expires=8.5, losses=1)),
    )

    spans = lease_spans(changes)

    assert [(span.fence, span.host, span.start, span.end, span.ended_as) for span in spans] == [
        (10, "nas1", at(0), at(4), "queued"),
        (11, "desktop", at(4), at(5), "queued"),
        (12, "mini", at(5.5), at(6), "done"),
    ]
    assert double_leases(spans) == []


def test_a_job_taken_while_its_renewed_lease_was_live_is_caught() -> None:
    claimed_and_renewed = [
        (0, "jobs", job("running", fence=10, host="nas1", expires=3)),
        (2, "jobs", job("running", fence=10, host="nas1", expires=5)),  # renewed to 5
    ]
    taken_over = audit(*claimed_and_renewed, (4, "jobs", job("running", fence=11, host="desktop", expires=7)))
    expired_early = audit(
        *claimed_and_renewed,
        (3.5, "jobs", job("queued", losses=1)),  # requeued as lost while live until 5
        (4, "jobs", job("running", fence=11, host="desktop", expires=7, losses=1)),
    )
    released = audit(
        *claimed_and_renewed,
        (3.5, "jobs", job("queued")),
        (4, "jobs", job("running", fence=11, host="desktop", expires=7)),
    )

    expected = [
        "job 1: fence 11 (desktop) claimed at 2026-12-01T12:00:04+00:00 while "
        "fence 10 (nas1) was live until 2026-12-01T12:00:05+00:00"
    ]
    assert double_leases(lease_spans(taken_over)) == expected
    assert double_leases(lease_spans(expired_early)) == expected
    assert double_leases(lease_spans(released)) == []  # nas1 gave it back at 3.5


def test_a_fence_going_back_is_caught() -> None:
    changes = audit(
        (0, "jobs", job("running", fence=10, host="nas1", expires=3)),
        (1, "jobs", job("queued")),
        (2, "jobs", job("running", fence=9, host="desktop", expires=5)),
    )

    assert double_leases(lease_spans(changes)) == ["job 1: fence 9 claimed after fence 10"]


def test_logged_and_audited_claims_must_match() -> None:
    spans = lease_spans(
        audit(
            (0, "jobs", job("running", fence=10, host="nas1", expires=3)),
            (1, "jobs", job("done", fence=10, host="nas1", expires=3)),
        )
    )
    log = [
        {"event": CLAIMED, "job": 1, "host": "nas1", "fence": 10, "lease_expires_at": stamp(3)},
        {"event": "job published", "job": 1},
    ]

    assert logged_claims(log) == [ClaimKey(1, 10, "nas1")]
    assert claim_problems(logged_claims(log), spans) == []
    assert claim_problems([], spans) == [
        "claim ClaimKey(job=1, fence=10, host='nas1') in the store's audit, never logged"
    ]
    assert claim_problems(logged_claims(log * 2), spans) == ["fence 10 logged as claimed 2 times"]
    assert claim_problems([ClaimKey(1, 10, "desktop")], spans) == [
        "claim ClaimKey(job=1, fence=10, host='desktop') logged, not in the store's audit",
        "claim ClaimKey(job=1, fence=10, host='nas1') in the store's audit, never logged",
    ]


def test_leader_epochs_must_grow_with_each_new_term() -> None:
    def leader(epoch: int, host: str, taken: float, expires: float) -> dict[str, Any]:
        return {"id": 1, "host": host, "epoch": epoch, "taken_at": stamp(taken), "expires_at": stamp(expires)}

    terms = [
        (0, "leader", leader(1, "nas1", 0, 3)),
        (1, "leader", leader(1, "nas1", 0, 4)),  # renewed: same term, same epoch
        (5, "leader", leader(2, "desktop", 5, 8)),  # nas1 froze: desktop's term
        (9, "leader", leader(3, "nas1", 9, 12)),  # nas1 again, anew
    ]
    assert leader_audit_problems(audit(*terms)) == []
    assert leader_audit_problems(audit(*terms, (13, "leader", leader(3, "desktop", 13, 16)))) == [
        "leader epoch 3 (nas1) then 3 (desktop) at 2026-12-01T12:00:13+00:00"
    ]
    assert leader_audit_problems(audit(*terms, (10, "leader", leader(2, "nas1", 9, 13)))) == [
        "leader epoch 3 (nas1) then 2 (nas1) at 2026-12-01T12:00:10+00:00"
    ]

    log = [
        {"event": LEADER, "host": "nas1", "epoch": 1, "timestamp": "2026-12-01T12:00:00Z"},
        {"event": LEADER, "host": "desktop", "epoch": 2, "timestamp": "2026-12-01T12:00:05Z"},
        {"event": "following the leader", "leader": "desktop", "epoch": 2, "timestamp": "2026-12-01T12:00:06Z"},
    ]
    assert leader_epoch_problems(log) == []
    stale = {"event": LEADER, "host": "nas1", "epoch": 2, "timestamp": "2026-12-01T12:00:09Z"}
    assert leader_epoch_problems([*log, stale]) == [
        "nas1 took the lead with epoch 2 at 2026-12-01T12:00:09+00:00 after desktop's 2"
    ]


def test_the_log_reader_keeps_json_objects_and_skips_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    entry = {"event": CLAIMED, "job": 1, "host": "nas1", "fence": 10}
    log.write_text(f"{json.dumps(entry)}\nTraceback (most recent call last):\n[1, 2]\n{{broken\n")

    assert read_log(log) == [entry]


def test_ledger_rows_must_be_one_per_source() -> None:
    rows = [("tv", "a.mkv"), ("tv", "c.mkv")]

    assert ledger_problems(rows, library_name="tv", sources=["a.mkv", "c.mkv"]) == []
    assert ledger_problems([*rows, ("tv", "a.mkv")], library_name="tv", sources=["a.mkv", "c.mkv"]) == [
        "tv/a.mkv: 2 ledger rows"
    ]
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
