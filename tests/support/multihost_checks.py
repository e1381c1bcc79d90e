"""What must hold after the multi-host faults, and where the checks read it.

The checks are pure functions over the agents' JSON log lines and the store's audit rows
(plus small readers of the archive), so the final test's assertions are one line each and each
check is tested on its own with hand-written inputs (tests/unit/test_multihost_checks.py).

Two sources, each for what it knows exactly:
- The store's audit (multihost.SharedStore installs it): a trigger records every insert and
  every update of a job's state, host, lease_token or lease_expires_at, and of the leader row,
  with the database's clock_timestamp(), in `hb2r_audit.changes`. A lease's whole life is there,
  every renewal included, on the one clock the leases use; the agents need not log heartbeats.
- The agents' logs (JSON lines): what each host believed. The runner logs every claim as
  `job claimed` with job (id), host, fence (the token; logged as `fence`, because agent/logs.py
  redacts any key named `token` or ending in `_token`) and lease_expires_at. The leader logs
  `leadership taken: this host plans` with host and epoch.

"Never two live leases on one job": a lease (one fence) is live from the audited claim (the
row turns running under a new token) until the row leaves it (another token, another state:
released, published, failed, requeued; the change's time, or the lease's expiry if that came
first) or, if it never does, its last renewed expiry. Per job, spans are half-open and must not
overlap, and fences must grow. Every audited claim must also be a logged claim (job, fence,
host), and every logged one audited: the test sees what the hosts did, not only the database.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from tests.support.clips import probed_duration

CLAIMED = "job claimed"
LEADER = "leadership taken: this host plans"


def _time(value: object, *, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an ISO-8601 time, got {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class AuditRow(NamedTuple):
    """One audited change: its order, the database's time, the table, the row after it."""

    seq: int
    at: datetime
    table: str
    row: Mapping[str, Any]


class ClaimKey(NamedTuple):
    job: int
    fence: int
    host: str


@dataclass(frozen=True)
class LeaseSpan:
    """One fence's hold on one job, on the database's clock: [start, end)."""

    job: int
    fence: int
    host: str
    start: datetime
    end: datetime
    ended_as: str | None  # the job's state when the lease ended; None if it never did

    @property
    def key(self) -> ClaimKey:
        return ClaimKey(self.job, self.fence, self.host)


def lease_spans(audit: Iterable[AuditRow]) -> list[LeaseSpan]:
    """Each fence's span, from the audited changes of the jobs table (in seq order).

    A lease ends early only when its holder ends it (publish, release, failure: the row leaves
    `running` with `host_losses` unchanged); then at that change. When the row goes straight to
    another token, or back to the queue as a lost lease (`host_losses` grew: expire_leases), the
    lease counts as live until its last renewed expiry: a job requeued or claimed before then is
    exactly what double_leases must catch.
    """
    spans: list[LeaseSpan] = []
    current: dict[int, LeaseSpan] = {}  # job -> its open span
    losses: dict[int, int] = {}  # job -> host_losses in its previous row
    for change in sorted((row for row in audit if row.table == "jobs"), key=lambda row: row.seq):
        job, row = int(change.row["id"]), change.row
        token = row.get("lease_token")
        held = row.get("state") == "running" and token is not None
        lost = int(row.get("host_losses") or 0) > losses.get(job, int(row.get("host_losses") or 0))
        losses[job] = int(row.get("host_losses") or 0)
        open_span = current.get(job)
        if open_span is not None and held and int(token) == open_span.fence:
            expiry = _time(row["lease_expires_at"], what=f"job {job} lease_expires_at")
            current[job] = replace(open_span, end=max(open_span.end, expiry))  # renewed
            continue
        if open_span is not None:
            ended_by_holder = not held and not lost
            end = min(open_span.end, change.at) if ended_by_holder else open_span.end
            spans.append(replace(open_span, end=end, ended_as=str(row.get("state"))))
            del current[job]
        if held:
            current[job] = LeaseSpan(
                job=job,
                fence=int(token),
                host=str(row.get("host")),
                start=change.at,
                end=_time(row["lease_expires_at"], what=f"job {job} lease_expires_at"),
                ended_as=None,
            )
    spans.extend(current.values())
    return sorted(spans, key=lambda span: (span.job, span.start, span.fence))


def double_leases(spans: Sequence[LeaseSpan]) -> list[str]:
    """What breaks "one live lease per job at a time": overlapping spans, fences not growing."""
    problems = []
    by_job: dict[int, list[LeaseSpan]] = {}
    for span in spans:
        by_job.setdefault(span.job, []).append(span)
    for job, held in sorted(by_job.items()):
        held.sort(key=lambda span: (span.start, span.fence))
        for earlier, later in itertools.pairwise(held):
            if later.start < earlier.end:
                problems.append(
                    f"job {job}: fence {later.fence} ({later.host}) claimed at {later.start.isoformat()} while "
                    f"fence {earlier.fence} ({earlier.host}) was live until {earlier.end.isoformat()}"
                )
            if later.fence <= earlier.fence:
                problems.append(f"job {job}: fence {later.fence} claimed after fence {earlier.fence}")
    return problems


def logged_claims(entries: Iterable[Mapping[str, Any]]) -> list[ClaimKey]:
    """The claims the hosts logged (all hosts' log lines together)."""
    return [
        ClaimKey(int(entry["job"]), int(entry["fence"]), str(entry["host"]))
        for entry in entries
        if entry.get("event") == CLAIMED
    ]


def claim_problems(logged: Sequence[ClaimKey], spans: Sequence[LeaseSpan]) -> list[str]:
    """Logged and audited claims must be the same set, each fence claimed once."""
    problems = [f"fence {fence} logged as claimed {count} times" for fence, count in _repeated(c.fence for c in logged)]
    audited = {span.key for span in spans}
    problems += [f"claim {key} logged, not in the store's audit" for key in sorted(set(logged) - audited)]
    problems += [f"claim {key} in the store's audit, never logged" for key in sorted(audited - set(logged))]
    return problems


def _repeated(values: Iterable[int]) -> list[tuple[int, int]]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return sorted((value, count) for value, count in counts.items() if count > 1)


def leader_epoch_problems(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Leaderships taken, in time order (all hosts' logs): each epoch above every one before."""
    taken = sorted(
        (_time(entry.get("timestamp"), what="leadership timestamp"), int(entry["epoch"]), str(entry.get("host")))
        for entry in entries
        if entry.get("event") == LEADER
    )
    problems = []
    for (_, earlier, first_host), (when, later, host) in itertools.pairwise(taken):
        if later <= earlier:
            problems.append(
                f"{host} took the lead with epoch {later} at {when.isoformat()} after {first_host}'s {earlier}"
            )
    return problems


def leader_audit_problems(audit: Iterable[AuditRow]) -> list[str]:
    """The leader row's epoch never goes down, and goes up whenever a new term begins (another
    host, or the same host taking it anew: another taken_at)."""
    problems = []
    rows = sorted((row for row in audit if row.table == "leader"), key=lambda row: row.seq)
    for before, after in itertools.pairwise(rows):
        old, new = before.row, after.row
        new_term = (old.get("host"), old.get("taken_at")) != (new.get("host"), new.get("taken_at"))
        if int(new["epoch"]) < int(old["epoch"]) or (new_term and int(new["epoch"]) <= int(old["epoch"])):
            problems.append(
                f"leader epoch {old['epoch']} ({old.get('host')}) then {new['epoch']} ({new.get('host')}) "
                f"at {after.at.isoformat()}"
            )
    return problems


def output_problems(*, library: Path, archive: Path, output: str = "TV", container: str = "mkv") -> list[str]:
    """Exactly one verified output per source: <archive>/<output>/<rel path with container suffix>
    exists with a duration within max(1 s, 2 %) of the source's, and nothing else was published."""
    problems = []
    expected = {}
    for source in sorted(path for path in library.rglob("*") if path.is_file()):
        rel = source.relative_to(library)
        expected[str(Path(output) / rel.with_suffix(f".{container}"))] = source
    published = {
        str(path.relative_to(archive))
        for path in archive.rglob("*")
        if path.is_file() and ".hb2r-partial" not in path.relative_to(archive).parts
    }
    for name in sorted(published - expected.keys()):
        problems.append(f"unexpected file in the archive: {name}")
    for name, source in expected.items():
        if name not in published:
            problems.append(f"no output for {source.relative_to(library)} (expected {name})")
            continue
        wanted, got = probed_duration(source), probed_duration(archive / name)
        if wanted is None or got is None:
            problems.append(f"{name}: ffprobe cannot read a duration (output {got}, source {wanted})")
        elif abs(wanted - got) > max(1.0, 0.02 * wanted):
            problems.append(f"{name}: duration {got:.2f}s, source {wanted:.2f}s")
    return problems


def temp_files(archive: Path) -> list[str]:
    """What is left in <archive>/.hb2r-partial (must be nothing)."""
    partial = archive / ".hb2r-partial"
    return sorted(str(path.relative_to(partial)) for path in partial.rglob("*")) if partial.is_dir() else []


def ledger_problems(rows: Iterable[tuple[Any, ...]], *, library_name: str, sources: Iterable[str]) -> list[str]:
    """One ledger row per source: rows are (library, rel_path) pairs, e.g. `SELECT library, rel_path FROM ledger`."""
    counts: dict[tuple[str, str], int] = {}
    for library, rel_path in rows:
        counts[(str(library), str(rel_path))] = counts.get((str(library), str(rel_path)), 0) + 1
    wanted = {(library_name, source) for source in sources}
    problems = [f"{key[0]}/{key[1]}: {count} ledger rows" for key, count in sorted(counts.items()) if count != 1]
    problems += [f"{key[0]}/{key[1]}: no ledger row" for key in sorted(wanted - counts.keys())]
    problems += [f"{key[0]}/{key[1]}: a ledger row for no source" for key in sorted(counts.keys() - wanted)]
    return problems
