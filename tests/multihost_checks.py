"""What must hold after the multi-host faults, and the log lines those checks read.

The checks are pure functions over the agents' JSON log lines (plus small readers of the
archive and the store), so the final test's assertions are one line each and each check is
tested on its own with hand-written logs (tests/unit/test_multihost_checks.py).

Log events the runner and the leader must write (JSON lines, structlog; every line carries
`timestamp`, ISO-8601 UTC). The fencing token is logged as `fence`, not `token`: agent/logs.py
redacts any key named `token` or ending in `_token`. Times named `*_at` are the *database's*
clock, as the leases are (on one test machine all clocks are one anyway).

- `job claimed`: job (id), fence (int), host (str), expires_at (the lease's first expiry) and,
  where known, claimed_at (else claimed_at = expires_at - lease is assumed).
- `lease renewed`: job, fence, host, expires_at (the new expiry). Every successful heartbeat,
  so the checker knows how long a lease really lived; without these a lease is taken to end
  at its last logged expiry, which could hide an overlap.
- `lease ended`: job, fence, host, reason (published | released | lost | failed | cancelled)
  and ended_at: the database time at which the row stopped being this lease's (the commit's
  time for publish/release/fail; absent for `lost`, whose lease ended at its last expiry,
  before the heartbeat that found it gone).
- `leader elected`: host, epoch (int), the database's epoch after this host took the leader row.

A lease is live from its claim until its end: `ended_at` if logged, else its latest expiry.
"Never two live leases" means: per job, the spans of its fences do not overlap, each fence is
claimed once, and fences grow in claim order. The end of one lease and the next claim may meet
(a claim the instant after expiry): spans are half-open.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CLAIMED = "job claimed"
RENEWED = "lease renewed"
ENDED = "lease ended"
LEADER = "leader elected"


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON object lines of an agent's log (other lines, e.g. a traceback, are skipped)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _time(value: object, *, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an ISO-8601 time, got {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class LeaseSpan:
    """One fence's hold on one job, on the database's clock: [start, end)."""

    job: int
    fence: int
    host: str
    start: datetime
    end: datetime
    ended_by: str | None  # the reason logged, None if the log never said (a killed host)


def lease_spans(entries: Iterable[Mapping[str, Any]], *, lease: timedelta) -> list[LeaseSpan]:
    """Each claimed fence's span, from the claim/renew/end events of all hosts' logs."""
    claims: dict[int, Mapping[str, Any]] = {}
    expiries: dict[int, datetime] = {}
    ends: dict[int, Mapping[str, Any]] = {}
    duplicates = []
    for entry in entries:
        event = entry.get("event")
        if event not in (CLAIMED, RENEWED, ENDED):
            continue
        fence = int(entry["fence"])
        if event == CLAIMED:
            if fence in claims:
                duplicates.append(fence)
            claims[fence] = entry
        if "expires_at" in entry and entry["expires_at"] is not None:
            expiry = _time(entry["expires_at"], what=f"fence {fence} expires_at")
            expiries[fence] = max(expiry, expiries.get(fence, expiry))
        if event == ENDED:
            ends[fence] = entry
    if duplicates:
        raise AssertionError(f"fences claimed more than once: {sorted(set(duplicates))}")
    spans = []
    for fence, claim in claims.items():
        first_expiry = _time(claim["expires_at"], what=f"fence {fence} expires_at")
        start = _time(claim["claimed_at"], what="claimed_at") if claim.get("claimed_at") else first_expiry - lease
        ended = ends.get(fence)
        if ended is not None and ended.get("ended_at"):
            end = _time(ended["ended_at"], what=f"fence {fence} ended_at")
        else:
            end = expiries[fence]
        spans.append(
            LeaseSpan(
                job=int(claim["job"]),
                fence=fence,
                host=str(claim["host"]),
                start=start,
                end=end,
                ended_by=None if ended is None else str(ended.get("reason")),
            )
        )
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


def leader_epoch_problems(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Leader elections in time order (all hosts' logs): each epoch above every one before."""
    elections = sorted(
        (_time(entry.get("timestamp"), what="leader elected timestamp"), int(entry["epoch"]), str(entry.get("host")))
        for entry in entries
        if entry.get("event") == LEADER
    )
    problems = []
    for (_, earlier, first_host), (when, later, host) in itertools.pairwise(elections):
        if later <= earlier:
            problems.append(f"{host} elected with epoch {later} at {when.isoformat()} after {first_host}'s {earlier}")
    return problems


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, by relative path (sources before/after: byte-identical)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def duration(path: Path) -> float:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


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
        wanted, got = duration(source), duration(archive / name)
        if abs(wanted - got) > max(1.0, 0.02 * wanted):
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
