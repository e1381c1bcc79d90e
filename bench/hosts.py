"""How fast do hosts claim jobs from one PostgreSQL queue? (issue 11, the claim part)

Set-up: a throwaway PostgreSQL cluster started the way the tests start theirs (tests/postgres.py:
initdb + pg_ctl in a temp folder, loopback TCP, fsync off), removed at the end. Each measurement
gets a fresh database, migrated, holding a queue of N jobs (default 2,000) in two libraries.

Load: claimer processes (tests/store/claimer.py), each with its own connection, all released at
once; each claims until the queue is empty and publishes every job it claims at once through
`finish_claimed` (job done + ledger row, fenced by the token), so that, as on real hosts, only a
few jobs run at any time. Claims/s = N / the wall time from the start signal until the last
claimer found the queue empty: a claim-and-publish cycle, so the claim rate alone is higher.
Latency = each `claim()` call alone (time.perf_counter around it), p50 and p99 over all claims.

Baselines, measured in the same round: the same queue claimed by ONE process (the throughput
ratio says what 4 processes gain or lose by contending), and a plain `SELECT 1` round trip from
this process (the floor a claim of ~6 statements in one transaction stands on).

Target: 4 processes claim >= 100 claims/s (a claim must never be what limits encoding: an
encode takes minutes). Rounds are repeated (default 3) and the medians reported.

    .venv/bin/python bench/hosts.py [--jobs 2000] [--hosts 4] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "store")]

import argparse  # noqa: E402 - after the path set-up above
import itertools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import NamedTuple  # noqa: E402

from claimer import fill, open_any, run_hosts  # noqa: E402
from postgres import PostgresCluster, start_cluster, stop_cluster  # noqa: E402

from agent.store.postgres import connect_postgres  # noqa: E402

LIBRARIES = ["tv", "movies"]
TARGET_CLAIMS_PER_SECOND = 100.0
_names = itertools.count(1)


class Figures(NamedTuple):
    claims_per_second: float
    p50_ms: float
    p99_ms: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(cluster: PostgresCluster, *, jobs: int, hosts: int) -> Figures:
    """Claim a fresh queue of `jobs` with `hosts` processes; return the figures, checking no job went twice."""
    name = f"bench_hosts_{next(_names)}"
    url = cluster.create_database(name)
    try:
        store = open_any(url)
        fill(store, count=jobs, libraries=LIBRARIES)
        store.close()
        run = run_hosts(url, hosts=[f"host{number}" for number in range(hosts)], libraries=LIBRARIES)
    finally:
        cluster.drop_database(name)
    claims = [claim for found in run.claims.values() for claim in found]
    if len(claims) != jobs or len({claim.job_id for claim in claims}) != jobs:
        raise SystemExit(f"FAIL: {len(claims)} claims of {len({c.job_id for c in claims})} jobs, expected {jobs}")
    latencies = [claim.seconds * 1000 for claim in claims]
    return Figures(jobs / run.seconds, percentile(latencies, 0.50), percentile(latencies, 0.99))


def select_round_trip_ms(cluster: PostgresCluster, *, count: int = 2000) -> float:
    """Return the median time of `SELECT 1` from this process, in ms."""
    name = f"bench_hosts_{next(_names)}"
    url = cluster.create_database(name)
    database = connect_postgres(url)
    try:
        times = []
        for _ in range(count):
            began = time.perf_counter()
            database.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - began) * 1000)
    finally:
        database.close()
        cluster.drop_database(name)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster, data = start_cluster()
    try:
        print(f"PostgreSQL cluster up in {cluster.started_in_seconds:.1f} s; queue of {args.jobs} jobs per measurement")
        singles, loads, selects = [], [], []
        for number in range(1, args.rounds + 1):
            selects.append(select_round_trip_ms(cluster))
            singles.append(measure(cluster, jobs=args.jobs, hosts=1))
            loads.append(measure(cluster, jobs=args.jobs, hosts=args.hosts))
            print(
                f"round {number}: SELECT 1 {selects[-1]:.3f} ms | 1 process {singles[-1].claims_per_second:.0f}/s"
                f" p50 {singles[-1].p50_ms:.2f} p99 {singles[-1].p99_ms:.2f} ms"
                f" | {args.hosts} processes {loads[-1].claims_per_second:.0f}/s"
                f" p50 {loads[-1].p50_ms:.2f} p99 {loads[-1].p99_ms:.2f} ms"
            )
    finally:
        stop_cluster(cluster, data)

    def med(figures: list[Figures], field: str) -> float:
        return statistics.median(getattr(one, field) for one in figures)

    rate = med(loads, "claims_per_second")
    print(f"\n== medians of {args.rounds} round{'s' if args.rounds > 1 else ''}")
    print(f"  SELECT 1 round trip:            {statistics.median(selects):.3f} ms")
    print(
        f"  1 process:                      {med(singles, 'claims_per_second'):.0f} claims/s,"
        f" p50 {med(singles, 'p50_ms'):.2f} ms, p99 {med(singles, 'p99_ms'):.2f} ms"
    )
    print(
        f"  {args.hosts} processes:                    {rate:.0f} claims/s,"
        f" p50 {med(loads, 'p50_ms'):.2f} ms, p99 {med(loads, 'p99_ms'):.2f} ms"
    )
    print(f"  throughput {args.hosts} processes / 1 process: {rate / med(singles, 'claims_per_second'):.2f}x")
    print(f"  claim p50 under load / SELECT 1: {med(loads, 'p50_ms') / statistics.median(selects):.1f}x")
    verdict = "ok" if rate >= TARGET_CLAIMS_PER_SECOND else "MISS"
    print(f"  target >= {TARGET_CLAIMS_PER_SECOND:.0f} claims/s with {args.hosts} processes: {verdict}")


if __name__ == "__main__":
    main()
