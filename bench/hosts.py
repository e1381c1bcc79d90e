"""How fast do hosts claim jobs from one PostgreSQL queue? (issue 11, the claim part)

Set-up: a throwaway PostgreSQL cluster started the way the tests start theirs (tests/support/postgres.py:
initdb + pg_ctl in a temp folder, loopback TCP, fsync off), removed at the end. Each measurement
gets a fresh database, migrated, holding a queue of N jobs (default 2,000) in two libraries.

Load: claimer processes (tests/support/claimer.py), each with its own connection, all released at
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

The host parts run real `hb2r run` agents in network namespaces against the same cluster (now
also listening on the bench's bridge), with the multi-host harness of the tests
(tests/support/multihost.py: `Network`, `SharedStore`, `Host`), real HandBrakeCLI, and clips the bench
makes (854x480, 20 s by default: about 4 s of encoding on one core, so that HandBrakeCLI's
start-up and the agent's verification do not dominate). Each measurement gets a fresh database
(with the harness's audit trigger: times are read from it, on the database's clock), a fresh
library and archive, and hosts of its own; its hosts are stopped and its database dropped after.

Scaling (two hosts against one): the same 6 clips encoded by ONE host pinned to one core
(`taskset -c 0`, inherited by its HandBrakeCLI children) and by TWO hosts pinned to core 0 and
core 1, each with max_jobs 1. The hosts are started and healthy first; then the clips are moved
into the library at once. Wall time = from the queue being full (the last job inserted, audit)
to the last job done (audit); after it the outputs are checked (one per source, duration of
the source, no temp file left, one ledger row each). Ratio two/one; target <= 0.6. Rounds
alternate which goes first (one-two, two-one, ...) so that a drift in the machine's load falls
on both alike; each line shows the 1-minute load average after each measurement, because on a
shared machine other work on the two cores slows the two-host case more than the one-host one.

Lease loss: two hosts (pinned to a core each, so that an encode lasts) with store.lease L (3 s
and 10 s by default); one clip. Once a host runs its encode (its temp file is there), the whole
host is SIGKILLed (every process of its namespace: a machine that dies); detection = from the
kill to the other host's claim of the job (the audited row running under a new token). It is
reported with its parts: what was left of the lease at the kill, the expiry to the requeue
(another host's `expire_leases` on its next tick), the requeue to the claim. Target <= L + 2 s.

Clean-up: hosts, the namespaces (and all that runs in them), links, mounts, the cluster and the
temp folder go on every exit, Ctrl-C and SIGTERM included; a run killed with SIGKILL leaves
namespaces and mounts that the next run of the harness removes (see tests/support/multihost.py).

    .venv/bin/python bench/hosts.py [--jobs 2000] [--hosts 4] [--rounds 3]
        [--parts claims,scale,lease] [--clips 6] [--clip-seconds 20] [--leases 3,10]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402 - after the path set-up above
import contextlib  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import NamedTuple, TypeVar  # noqa: E402

from agent.store.postgres import connect_postgres  # noqa: E402
from tests.support.claimer import fill, open_any, run_hosts  # noqa: E402
from tests.support.clips import make_clip  # noqa: E402
from tests.support.multihost import Host, Network, SharedStore, network_run  # noqa: E402
from tests.support.multihost_checks import AuditRow, ledger_problems, output_problems, temp_files  # noqa: E402
from tests.support.postgres import PostgresCluster, start_cluster, stop_cluster  # noqa: E402

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


# --- hosts in namespaces: scaling over two hosts, lease loss detection --------------------------

TARGET_SCALE_RATIO = 0.6
LEASE_SLACK_SECONDS = 2.0
CLIP_SIZE = "854x480"
T = TypeVar("T")


class Bench(NamedTuple):
    """What the host measurements share: the network, its cluster, a temp folder, the made clips."""

    network: Network
    cluster: PostgresCluster
    folder: Path
    clips: list[Path]  # made once, hard-linked into each measurement's library


def poll(condition: Callable[[], T | None], *, what: str, deadline: float, hosts: list[Host]) -> T:
    """Return condition()'s first truthy value, polling every 50 ms; fail after deadline or if a host died."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        for host in hosts:
            if not host.running():
                raise SystemExit(
                    f"FAIL: host {host.name} exited ({host.exit_code()}) waiting for {what}:\n{host.log_tail()}"
                )
        time.sleep(0.05)
    tails = "\n".join(f"--- {host.name}\n{host.log_tail(1500)}" for host in hosts)
    raise SystemExit(f"FAIL: no {what} within {deadline:.0f} s\n{tails}")


@contextlib.contextmanager
def measurement(
    bench: Bench, tag: str, *, clips: int, lease: str, cpus: list[str]
) -> Iterator[tuple[SharedStore, list[Host], Path]]:
    """A fresh database, library and archive, and len(cpus) healthy hosts pinned to those cores;
    yields (store, hosts, library); the clips are not in the library yet (see `fill_library`)."""
    name = f"bench_{tag}"
    local_url = bench.cluster.create_database(name)
    store = SharedStore(
        url=f"postgresql://hb2r@{bench.network.gateway}:{bench.cluster.port}/{name}",
        password=bench.cluster.password,
        local_url=local_url,
        admin_url=bench.cluster.admin_url.rsplit("/", 1)[0] + f"/{name}",
    )
    root = bench.folder / tag
    library, archive, incoming = root / "library", root / "archive", root / "incoming" / "Show"
    for folder in (library, archive, incoming):
        folder.mkdir(parents=True)
    for clip in bench.clips[:clips]:
        os.link(clip, incoming / clip.name)  # the agent never writes its sources: links are safe
    hosts: list[Host] = []
    try:
        for number, cpu in enumerate(cpus):
            host = Host(
                network=bench.network,
                name=f"{tag}h{number}",
                root=root / "hosts" / str(number),
                library=library,
                archive=archive,
                store=store,
                lease=lease,
            )
            hosts.append(host)
            host.start(cpus=cpu)
        for host in hosts:
            host.wait_healthy(accept=("healthy", "degraded"))
        yield store, hosts, library
    finally:
        for host in hosts:
            host.stop()
        bench.cluster.drop_database(name)


def fill_library(library: Path) -> None:
    """Move the measurement's clips into the library at once (one rename)."""
    (library.parent / "incoming" / "Show").rename(library / "Show")


def job_changes(store: SharedStore) -> list[AuditRow]:
    return [change for change in store.audit() if change.table == "jobs"]


class Scale(NamedTuple):
    seconds: float
    claims: dict[str, int]  # host -> jobs it claimed


def encode_all(bench: Bench, tag: str, *, clips: int, cpus: list[str]) -> Scale:
    """Encode the clips with one host per entry of cpus; the wall time from queue full to all done."""
    with measurement(bench, tag, clips=clips, lease="10s", cpus=cpus) as (store, hosts, library):
        fill_library(library)

        def all_done() -> bool:
            states = dict(store.rows("SELECT state, count(*) FROM jobs GROUP BY state"))
            if set(states) - {"queued", "running", "done"}:
                raise SystemExit(f"FAIL: jobs {states}\n{hosts[0].log_tail()}")
            return states.get("done") == clips

        poll(all_done, what=f"{clips} jobs done", deadline=60 + 40 * clips, hosts=hosts)
        changes = job_changes(store)
        archive = library.parent / "archive"
        problems = output_problems(library=library, archive=archive) + temp_files(archive)
        sources = [str(path.relative_to(library)) for path in library.rglob("*") if path.is_file()]
        problems += ledger_problems(
            store.rows("SELECT library, rel_path FROM ledger"), library_name="tv", sources=sources
        )
        if problems:
            raise SystemExit(f"FAIL: outputs of {tag}: {problems}")
        claims = {host.name: len(host.events("job claimed")) for host in hosts}
    inserted: dict[int, datetime] = {}
    for change in changes:
        inserted.setdefault(int(change.row["id"]), change.at)
    full = max(inserted.values())
    done = max(change.at for change in changes if change.row["state"] == "done")
    return Scale((done - full).total_seconds(), claims)


class Loss(NamedTuple):
    detection: float  # kill -> the job claimed by another host
    lease_left: float  # kill -> the dead host's lease expiry
    requeue: float  # expiry -> the job back in the queue
    claim: float  # requeue -> claimed by another host


def lose_a_host(bench: Bench, tag: str, *, lease: int) -> Loss:
    """Kill the host that runs the one clip's encode; time until the other host runs it."""
    with measurement(bench, tag, clips=1, lease=f"{lease}s", cpus=["0", "1"]) as (store, hosts, library):
        fill_library(library)
        partial = library.parent / "archive" / ".hb2r-partial"

        def encoding() -> tuple[int, str, int] | None:
            rows = store.rows("SELECT id, host, lease_token FROM jobs WHERE state = 'running'")
            return rows[0] if rows and partial.is_dir() and any(partial.iterdir()) else None  # type: ignore[return-value]

        job, holder, token = poll(encoding, what="an encode running", deadline=60, hosts=hosts)
        victim = next(host for host in hosts if host.name == holder)
        survivor = next(host for host in hosts if host is not victim)
        killed = datetime.now(UTC)
        victim.crash()
        poll(
            lambda: store.rows(
                "SELECT host FROM jobs WHERE id = %s AND state = 'running' AND lease_token <> %s", (job, token)
            ),
            what="the job claimed by another host",
            deadline=lease + 30,
            hosts=[survivor],  # the victim is dead on purpose
        )
        changes = [change for change in job_changes(store) if int(change.row["id"]) == job]
    lease_end = max(
        datetime.fromisoformat(str(change.row["lease_expires_at"]).replace("Z", "+00:00"))
        for change in changes
        if change.row.get("lease_token") == token and change.row.get("lease_expires_at")
    )
    requeued = next(change.at for change in changes if change.row["state"] == "queued" and change.row["host_losses"])
    claimed = next(
        change for change in changes if change.row["state"] == "running" and change.row["lease_token"] != token
    )
    if claimed.row["host"] != survivor.name:
        raise SystemExit(f"FAIL: the job went to {claimed.row['host']}, not {survivor.name}")
    return Loss(
        detection=(claimed.at - killed).total_seconds(),
        lease_left=(lease_end - killed).total_seconds(),
        requeue=(requeued - lease_end).total_seconds(),
        claim=(claimed.at - requeued).total_seconds(),
    )


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def claims_part(cluster: PostgresCluster, args: argparse.Namespace) -> None:
    print(f"\n== claims: a queue of {args.jobs} jobs per measurement")
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

    def med(figures: list[Figures], field: str) -> float:
        return statistics.median(getattr(one, field) for one in figures)

    rate = med(loads, "claims_per_second")
    print(f"medians of {args.rounds} round{'s' if args.rounds > 1 else ''}:")
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


def scale_part(bench: Bench, args: argparse.Namespace) -> None:
    print(
        f"\n== two hosts (cores 0 and 1) against one (core 0):"
        f" {args.clips} clips of {args.clip_seconds:g} s {CLIP_SIZE}"
    )
    ones, twos = [], []
    for number in range(1, args.rounds + 1):
        made: dict[int, Scale] = {}
        loads: dict[int, float] = {}
        for count in (1, 2) if number % 2 else (2, 1):  # one-two, two-one, ...: a drift weighs on both
            made[count] = encode_all(bench, f"s{number}n{count}", clips=args.clips, cpus=["0", "1"][:count])
            loads[count] = os.getloadavg()[0]
        one, two = made[1], made[2]
        ones.append(one.seconds)
        twos.append(two.seconds)
        split = "/".join(str(claimed) for claimed in two.claims.values())
        print(
            f"round {number}: one host {one.seconds:.1f} s (load {loads[1]:.1f})"
            f" | two hosts {two.seconds:.1f} s (jobs {split}, load {loads[2]:.1f})"
            f" | ratio {two.seconds / one.seconds:.2f}"
        )
    ratio = median_of(twos) / median_of(ones)
    verdict = "ok" if ratio <= TARGET_SCALE_RATIO else "MISS"
    print(f"medians of {args.rounds}: one host {median_of(ones):.1f} s, two hosts {median_of(twos):.1f} s")
    print(
        f"  wall time two / one: {ratio:.2f}"
        f" (median of per-round ratios {median_of([b / a for a, b in zip(ones, twos, strict=True)]):.2f})"
    )
    print(f"  target <= {TARGET_SCALE_RATIO}: {verdict}")


def lease_part(bench: Bench, args: argparse.Namespace) -> None:
    print("\n== lease loss: a host SIGKILLed mid-encode, until another host runs its job")
    for lease in args.leases:
        losses = [lose_a_host(bench, f"l{lease}r{number}", lease=lease) for number in range(1, args.rounds + 1)]
        for number, loss in enumerate(losses, 1):
            print(
                f"lease {lease} s round {number}: {loss.detection:.2f} s (lease left at the kill {loss.lease_left:.2f},"
                f" expiry -> requeue {loss.requeue:.2f}, requeue -> claim {loss.claim:.2f})"
            )
        detection = median_of([loss.detection for loss in losses])
        worst = max(loss.detection for loss in losses)
        verdict = "ok" if worst <= lease + LEASE_SLACK_SECONDS else "MISS"
        print(
            f"  lease {lease} s: median {detection:.2f} s = {detection / lease:.2f} x lease"
            f" (worst {worst:.2f} s);"
            f" median lease left at the kill {median_of([loss.lease_left for loss in losses]):.2f} s;"
            f" target <= lease + {LEASE_SLACK_SECONDS:g} s = {lease + LEASE_SLACK_SECONDS:g} s: {verdict}"
        )


def make_clips(folder: Path, *, count: int, seconds: float) -> list[Path]:
    """count distinct clips (durations differ by 0.1 s, so no two files are alike)."""
    return [
        make_clip(folder / f"E{number:02d}.mkv", seconds=seconds + number / 10, size=CLIP_SIZE)
        for number in range(count)
    ]


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: hosts, cluster, network, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="claims,scale,lease", help="which measurements, comma-separated")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--clip-seconds", type=float, default=20.0)
    parser.add_argument("--leases", type=lambda text: [int(one) for one in text.split(",")], default=[3, 10])
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"claims", "scale", "lease"}:
        parser.error(
            f"--parts: unknown {sorted(parts - {'claims', 'scale', 'lease'})}; choose from claims, scale, lease"
        )
    if (parts & {"scale", "lease"}) and (os.cpu_count() or 1) < 2:
        parser.error("the host measurements pin hosts to cores 0 and 1: this machine has one core")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGHUP, _exit_on_sigterm)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="hb2r-bench-hosts-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)  # last: after the mounts are gone
        network = stack.enter_context(network_run())
        cluster, data = start_cluster(listen=[network.gateway], clients=[network.cidr])
        stack.callback(stop_cluster, cluster, data)
        print(f"PostgreSQL cluster up in {cluster.started_in_seconds:.1f} s (127.0.0.1 and {network.gateway})")
        if "claims" in parts:
            claims_part(cluster, args)
        if parts & {"scale", "lease"}:
            clips = make_clips(folder / "clips", count=max(args.clips, 1), seconds=args.clip_seconds)
            bench = Bench(network=network, cluster=cluster, folder=folder, clips=clips)
            if "scale" in parts:
                scale_part(bench, args)
            if "lease" in parts:
                lease_part(bench, args)
    print(f"\nbench done in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
