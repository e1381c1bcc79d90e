"""How fast does the HTTP API inside `hb2r run` answer, with the agent idle on a big history?

Set-up, in a temp folder: a config with one library whose watched folder is empty, the API on
a free loopback port, one user whose password is hashed at bcrypt cost 12 (the default) and
`auth.login_rate_limit: 100000/min`, so that a login storm reaches bcrypt instead of the limiter.
The state database is filled before the start with a history of 10,000 jobs: 85 % done (each
with its ledger row, output size known), 9 % cancelled, 6 % dead (error and stderr kept). No
job is queued, failed or running: those would start encodes and the agent would not be idle.
The sources were deleted after their encodes: the last scan recorded saw the folder empty, so
the vanish breaker does not pause the library and /health says `healthy`. Then
`python -m agent run CONFIG`, polled on /health until it answers 200 (60 s deadline).

Load: this process, one aiohttp ClientSession with a keep-alive TCPConnector, N concurrent
workers (default 16) each sending the next request as soon as the last one is answered, on one
URL, for a fixed window (default 5 s) after a warm-up (default 1 s); the latency of every
request begun in the window, by time.perf_counter, from send to the whole body read. Reported:
requests/s, p50 and p99; the CPU (psutil, all threads) of the server, of this client and of
everything else on the machine (steal time included), each as a share of one core, and the
server's CPU per request. A figure during which everything else took more than a quarter of a
core is flagged NOISY. Any answer but 200 is counted as an error. With N closed-loop workers
a request waits for the N - 1 ahead of it: p50 is about N x the server's time per request.

Baseline, measured in the same run by the same client: a minimal aiohttp app in its own
process (so that it does not share the client's loop or core) answering GET /health with a
constant JSON body of about the size of hb2r's. hb2r's /health throughput is printed as a ratio
of it: the load client is Python too and may be what limits both.

Each round, interleaved so that drift in the machine's load hits all alike (default 3 rounds;
the figures quoted are medians over rounds):
1. bare aiohttp /health;
2. hb2r /health, no token (targets: >= 1,500 req/s, p99 < 20 ms);
3. hb2r /health during a login storm: a separate process with 8 workers posting logins with
   the right password without pause (bcrypt cost 12, ~0.3 s of CPU each). Target: /health no
   more than 2x slower than in 2. of the same round, just before, in p50, p99 and throughput
   (bcrypt runs off the event loop);
4. hb2r GET /api/jobs?limit=100 with a token from one login (target: p99 < 50 ms), and the
   same with 1 worker (context: the latency of one request with no queue in front of it).

On a 2-core machine the client takes one core and the server's event loop the other; during the
storm the agent's bcrypt thread (agent.auth.bcrypt_pool.LOGIN_THREADS, 1 there) competes with both, so part
of the storm's slowdown is that CPU, not a blocked loop.

Exits 1 if the agent (or the baseline server) fails to start or dies; a missed target prints
MISS and still exits 0.

    .venv/bin/python bench/api.py [--jobs 10000] [--workers 16] [--seconds 5] [--warmup 1]
        [--rounds 3] [--storm-workers 8] [--keep DIR]
    quick: .venv/bin/python bench/api.py --jobs 1000 --seconds 2 --rounds 1
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402 - after the path set-up above
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from agent.passwords import hash_password  # noqa: E402
from agent.store.db import open_database, transaction  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

HB2R = [sys.executable, "-m", "agent"]
USER = "bench"
PASSWORD = "bench-password-for-the-storm"  # noqa: S105 - a throwaway user of a temp agent
BCRYPT_COST = 12  # the default of auth.bcrypt_rounds
START_DEADLINE = 60.0
TARGET_HEALTH_RATE = 1500.0
TARGET_HEALTH_P99 = 0.020
TARGET_JOBS_P99 = 0.050
TARGET_STORM_SLOWDOWN = 2.0
NOISY_SHARE = 0.25  # CPU used outside the benchmark, in cores, above which a figure is flagged

# The baseline: the least an aiohttp server can do for GET /health. A body of about the size
# and shape of hb2r's, serialised on every request as hb2r's is.
BARE_SERVER = """
import sys
from aiohttp import web

BODY = {
    "status": "healthy", "timestamp": "2024-01-01T00:00:00Z", "version": "0.0.0",
    "system": {"cpu_percent": 12.5, "memory_percent": 40.1, "disk_free_gb": 100.0},
    "database": "healthy", "queue": {"queue_size": 0, "running_jobs": 0, "completed_jobs": 8500},
    "problems": [], "config_generation": 1, "uptime_seconds": 10,
}

async def health(request):
    return web.json_response(BODY)

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The login storm, in its own process: workers posting the right password without pause for
# a given number of seconds; prints the answers it got (by status) and the login latencies.
STORM = """
import asyncio, json, os, sys, time
import aiohttp

url, user, workers, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
password = os.environ["HB2R_BENCH_PASSWORD"]

async def main():
    counts, latencies = {}, []
    started = time.perf_counter()
    end = started + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers), timeout=timeout) as session:
        async def worker():
            while time.perf_counter() < end:
                began = time.perf_counter()
                try:
                    async with session.post(url, json={"username": user, "password": password}) as response:
                        await response.read()
                        key = str(response.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    key = type(error).__name__
                counts[key] = counts.get(key, 0) + 1
                if key == "200":
                    latencies.append(time.perf_counter() - began)
        await asyncio.gather(*(worker() for _ in range(workers)))
    print(json.dumps({"counts": counts, "latencies": latencies, "seconds": time.perf_counter() - started}))

asyncio.run(main())
"""


class BenchError(Exception):
    """Something the benchmark needs failed to run."""


# --- set-up -----------------------------------------------------------------------------------


def write_config(root: Path) -> Path:
    for folder in ("tv", "archive", "archive/TV"):
        (root / folder).mkdir(exist_ok=True)
    password_hash = hash_password(PASSWORD, rounds=BCRYPT_COST)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        "  - {name: tv, source: tv, output: TV, preset: tv}\n"
        "presets:\n"
        "  tv: {handbrake: 'Very Fast 480p30', container: mkv}\n"
        f"server: {{listen: '127.0.0.1:{free_port()}'}}\n"
        "auth: {jwt_secret_file: state/jwt.secret, login_rate_limit: 100000/min}\n"
        "users:\n"
        f'  - {{name: {USER}, role: user, password_hash: "{password_hash}"}}\n'
    )
    return config


def listen_of(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("server:"):
            return line.split("'")[1]
    raise BenchError("no server.listen in the config")


def fill_history(state_dir: Path, count: int) -> dict[str, int]:
    """Write `count` jobs (done with ledger rows, cancelled, dead) in one transaction; return counts by state."""
    rng = random.Random(20240601)
    connection = open_database(state_dir)
    start = datetime.now(UTC) - timedelta(days=90)
    preset_hash = "b" * 64
    stamp = lambda moment: moment.astimezone(UTC).isoformat(timespec="microseconds")  # noqa: E731
    job_rows, ledger_rows = [], []
    states = {"done": 0, "cancelled": 0, "dead": 0}
    for index in range(count):
        show, season, episode = index // 200, index // 20 % 10, index % 20
        rel_path = f"Show {show:04d}/Season {season:02d}/Show {show:04d} - S{season:02d}E{episode:03d}.mkv"
        output_path = f"TV/{rel_path}"
        fingerprint = f"{rng.getrandbits(128):032x}"
        created = start + timedelta(seconds=index * 90 * 86400 / count)
        updated = created + timedelta(minutes=rng.uniform(1, 30))
        roll = rng.random()
        state = "done" if roll < 0.85 else "cancelled" if roll < 0.94 else "dead"
        states[state] += 1
        error = stderr = None
        attempts, progress = (1, 100.0) if state == "done" else (0, None)
        if state == "dead":
            attempts = 3
            error = "HandBrakeCLI exited with status 3"
            stderr = "\n".join(
                f"[12:00:{second:02d}] libhb: scan thread found 0 valid title(s)" for second in range(20)
            )
        reason = "new" if rng.random() < 0.9 else "preset changed"
        job_rows.append(
            (index + 1, "tv", rel_path, fingerprint, preset_hash, output_path, reason, state, attempts, None,
             error, stderr, progress, stamp(created), stamp(updated))
        )  # fmt: skip
        if state == "done":
            size = rng.randint(200, 4000) * 1024 * 1024
            ledger_rows.append(
                ("tv", rel_path, fingerprint, size, int(created.timestamp() * 1e9), preset_hash, output_path,
                 stamp(updated), size // 3)
            )  # fmt: skip
    with transaction(connection):
        connection.executemany(
            "INSERT INTO jobs (id, library, rel_path, fingerprint, preset_hash, output_path, reason, state, attempts,"
            " not_before, error, stderr_tail, progress, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            job_rows,
        )
        connection.executemany(
            "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path,"
            " encoded_at, output_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ledger_rows,
        )
        # The sources were deleted after their encodes (the watched folder is empty) and the last
        # scan saw that: without this row the vanish breaker would pause the library.
        connection.execute(
            "INSERT INTO library_scans (library, file_count, scanned_at) VALUES ('tv', 0, ?)",
            (datetime.now(UTC).isoformat(),),
        )
    found = dict(connection.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    connection.close()
    if found != {state: number for state, number in states.items() if number}:
        raise BenchError(f"the history was not written as meant: {found}")
    return found


# --- processes --------------------------------------------------------------------------------


def wait_for_200(url: str, process: subprocess.Popen[bytes], *, deadline: float, what: str, log: Path | None) -> float:
    """Poll url until it answers 200; return the seconds it took. Raise BenchError if process dies or time runs out."""
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise BenchError(f"{what} exited ({process.returncode}) before answering {url}\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        if time.perf_counter() - started > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise BenchError(f"{what} did not answer 200 on {url} within {deadline:.0f}s\n{tail}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes] | None, *, grace: float = 15.0) -> int | None:
    """SIGTERM, wait up to grace seconds, then SIGKILL; return the exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, all cores summed."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


# --- the load client --------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    errors: int
    wall: float
    latencies: list[float]  # sorted, seconds
    server_cpu: float  # seconds, all the server's threads
    client_cpu: float
    other_cpu: float  # seconds of CPU the machine spent outside the benchmark's processes

    @property
    def rate(self) -> float:
        return self.requests / self.wall

    def quantile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(fraction * len(self.latencies)))]

    @property
    def p50(self) -> float:
        return self.quantile(0.50)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def per_request(self) -> float:
        """Server CPU seconds per request."""
        return self.server_cpu / max(self.requests, 1)

    @property
    def noisy(self) -> bool:
        return self.other_cpu / self.wall > NOISY_SHARE

    def line(self, name: str, *, cpu: bool = True) -> str:
        """One line: throughput, latency, and the CPU shares (of one core) of server, client and the rest."""
        cost = f" {self.per_request * 1e6:5.0f} us/req" if cpu else " " * 13
        return (
            f"  {name:<30} {self.rate:6.0f} req/s  p50 {self.p50 * 1000:6.2f} ms  p99 {self.p99 * 1000:6.2f} ms"
            f"  CPU: server {self.server_cpu / self.wall:4.0%}{cost}, client {self.client_cpu / self.wall:4.0%},"
            f" other {self.other_cpu / self.wall:4.0%}"
            + (f"  {self.errors} ERRORS" if self.errors else "")
            + ("  NOISY" if self.noisy else "")
        )


async def hammer(
    url: str,
    *,
    workers: int,
    seconds: float,
    warmup: float,
    server: psutil.Process,
    headers: dict[str, str] | None = None,
    also: tuple[psutil.Process, ...] = (),
) -> Load:
    """`workers` closed-loop clients on url: a warm-up, then a measured window of `seconds`."""
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    errors = 0

    async def worker(session: aiohttp.ClientSession, until: float, record: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            began = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if record:
                if ok:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        await asyncio.gather(*(worker(session, time.perf_counter() + warmup, False) for _ in range(workers)))
        processes = (server, *also)
        cpu_before = [cpu_seconds(process) for process in processes]
        client_before, busy_before = time.process_time(), busy_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, started + seconds, True) for _ in range(workers)))
        wall = time.perf_counter() - started
        client_cpu, busy = time.process_time() - client_before, busy_seconds() - busy_before
        used = [cpu_seconds(process) - before for process, before in zip(processes, cpu_before, strict=True)]
    return Load(
        requests=len(latencies),
        errors=errors,
        wall=wall,
        latencies=sorted(latencies),
        server_cpu=used[0],
        client_cpu=client_cpu,
        other_cpu=max(0.0, busy - client_cpu - sum(used)),
    )


def login(base: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base}/api/auth/login",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return str(json.loads(response.read())["token"])


def get_json(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


# --- one round --------------------------------------------------------------------------------


@dataclass
class Round:
    bare: Load
    health: Load
    jobs: Load
    jobs_alone: Load
    storm: Load
    logins_per_second: float  # answered 200 during the storm


def storm_health(
    base: str, agent: psutil.Process, *, workers: int, storm_workers: int, seconds: float, warmup: float
) -> tuple[Load, dict[str, int], list[float], float]:
    """/health under load while a separate process posts logins without pause."""
    lead = 1.5  # the storm runs this long before the warm-up starts: bcrypt's queue is full by then
    storm = subprocess.Popen(
        [sys.executable, "-c", STORM, f"{base}/api/auth/login", USER, str(storm_workers),
         str(lead + warmup + seconds + 0.5)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "HB2R_BENCH_PASSWORD": PASSWORD},
    )  # fmt: skip
    try:
        time.sleep(lead)
        load = asyncio.run(
            hammer(f"{base}/health", workers=workers, seconds=seconds, warmup=warmup, server=agent,
                   also=(psutil.Process(storm.pid),))
        )  # fmt: skip
        out, _ = storm.communicate(timeout=60)
    finally:
        stop(storm, grace=5)
    if storm.returncode != 0:
        raise BenchError(f"the login storm failed (exit {storm.returncode})")
    result = json.loads(out)
    return load, result["counts"], result["latencies"], result["seconds"]


def one_round(
    base: str,
    bare_url: str,
    agent: psutil.Process,
    bare: psutil.Process,
    token: str,
    *,
    workers: int,
    storm_workers: int,
    seconds: float,
    warmup: float,
) -> Round:
    def load(url: str, server: psutil.Process, headers: dict[str, str] | None = None) -> Load:
        return asyncio.run(hammer(url, workers=workers, seconds=seconds, warmup=warmup, server=server, headers=headers))

    bare_load = load(bare_url, bare)
    print(bare_load.line("bare aiohttp /health"), flush=True)
    health = load(f"{base}/health", agent)
    print(health.line("hb2r /health"), flush=True)
    storm, logins, login_latencies, storm_seconds = storm_health(
        base, agent, workers=workers, storm_workers=storm_workers, seconds=seconds, warmup=warmup
    )
    print(storm.line("hb2r /health + login storm", cpu=False), flush=True)
    answered = sum(logins.values())
    print(
        f"  {'':<30} storm: {answered} logins answered in {storm_seconds:.1f}s"
        f" ({', '.join(f'{n} x {k}' for k, n in sorted(logins.items()))}), {logins.get('200', 0) / storm_seconds:.1f}"
        f" logins/s, p50 {statistics.median(login_latencies) if login_latencies else float('nan'):.2f} s each;"
        " server CPU includes bcrypt",
        flush=True,
    )
    auth = {"Authorization": f"Bearer {token}"}
    jobs = load(f"{base}/api/jobs?limit=100", agent, auth)
    print(jobs.line("hb2r /api/jobs?limit=100"), flush=True)
    jobs_alone = asyncio.run(
        hammer(f"{base}/api/jobs?limit=100", workers=1, seconds=seconds, warmup=warmup, server=agent, headers=auth)
    )
    print(jobs_alone.line("  the same, 1 worker"), flush=True)
    return Round(bare_load, health, jobs, jobs_alone, storm, logins.get("200", 0) / storm_seconds)


# --- the report -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(rounds: list[Round]) -> None:
    def med(pick: str, what: str) -> float:
        return median([getattr(getattr(one, pick), what) for one in rounds])

    n = len(rounds)
    print(f"\n== medians of {n} round{'s' if n > 1 else ''}")
    for name, pick in (
        ("bare aiohttp /health", "bare"),
        ("hb2r /health", "health"),
        ("hb2r /health + login storm", "storm"),
        ("hb2r /api/jobs?limit=100", "jobs"),
        ("  the same, 1 worker", "jobs_alone"),
    ):
        cost = f"  server {med(pick, 'per_request') * 1e6:5.0f} us CPU/req" if pick != "storm" else ""
        noisy = sum(getattr(one, pick).noisy for one in rounds)
        print(
            f"  {name:<30} {med(pick, 'rate'):6.0f} req/s  p50 {med(pick, 'p50') * 1000:6.2f} ms"
            f"  p99 {med(pick, 'p99') * 1000:6.2f} ms{cost}" + (f"  ({noisy} of {n} NOISY)" if noisy else "")
        )
    ratio = med("health", "rate") / med("bare", "rate")
    print(f"  hb2r /health throughput / bare aiohttp:   {ratio:.2f}x")
    jobs_vs_health = med("jobs", "rate") / med("health", "rate")
    print(f"  hb2r /api/jobs throughput / hb2r /health: {jobs_vs_health:.2f}x")
    slow_p50 = median([one.storm.p50 / one.health.p50 for one in rounds])
    slow_p99 = median([one.storm.p99 / one.health.p99 for one in rounds])
    slow_rate = median([one.health.rate / one.storm.rate for one in rounds])
    print(
        f"  login storm slowdown of /health (storm / quiet, same round): p50 {slow_p50:.2f}x  p99 {slow_p99:.2f}x"
        f"  throughput {slow_rate:.2f}x"
    )
    print(f"  logins answered 200 during the storm: {median([one.logins_per_second for one in rounds]):.1f}/s")

    rows = [
        ("/health throughput", f"{med('health', 'rate'):.0f} req/s", f">= {TARGET_HEALTH_RATE:.0f} req/s",
         med("health", "rate") >= TARGET_HEALTH_RATE),
        ("/health p99", f"{med('health', 'p99') * 1000:.2f} ms", f"< {TARGET_HEALTH_P99 * 1000:.0f} ms",
         med("health", "p99") < TARGET_HEALTH_P99),
        ("/api/jobs?limit=100 p99", f"{med('jobs', 'p99') * 1000:.2f} ms", f"< {TARGET_JOBS_P99 * 1000:.0f} ms",
         med("jobs", "p99") < TARGET_JOBS_P99),
        ("storm: /health p50 slowdown", f"{slow_p50:.2f}x", f"<= {TARGET_STORM_SLOWDOWN:.0f}x",
         slow_p50 <= TARGET_STORM_SLOWDOWN),
        ("storm: /health p99 slowdown", f"{slow_p99:.2f}x", f"<= {TARGET_STORM_SLOWDOWN:.0f}x",
         slow_p99 <= TARGET_STORM_SLOWDOWN),
        ("storm: /health throughput drop", f"{slow_rate:.2f}x", f"<= {TARGET_STORM_SLOWDOWN:.0f}x",
         slow_rate <= TARGET_STORM_SLOWDOWN),
    ]  # fmt: skip
    print("\n== targets (medians)")
    print(f"  {'target':<32} {'measured':>12}  {'wanted':<14} result")
    for name, measured, wanted, ok in rows:
        print(f"  {name:<32} {measured:>12}  {wanted:<14} {'PASS' if ok else 'MISS'}")
    loads = [load for one in rounds for load in (one.bare, one.health, one.jobs, one.jobs_alone, one.storm)]
    if any(load.errors for load in loads):
        print("  NOTE: some requests failed (see ERRORS above); their latencies are not counted")


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the history (default 10000)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent load workers (default 16)")
    parser.add_argument("--seconds", type=float, default=5, help="measured window of each load (default 5)")
    parser.add_argument("--warmup", type=float, default=1, help="warm-up before each window (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four loads (default 3)")
    parser.add_argument("--storm-workers", type=int, default=8, help="concurrent logins in the storm (default 8)")
    parser.add_argument("--keep", type=Path, help="work here and keep the config, database and agent log")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.workers < 1 or arguments.jobs < 100:
        parser.error("--rounds and --workers must be at least 1, --jobs at least 100")

    root = arguments.keep or Path(tempfile.mkdtemp(prefix="hb2r-http-"))
    root.mkdir(parents=True, exist_ok=True)
    agent: subprocess.Popen[bytes] | None = None
    bare: subprocess.Popen[bytes] | None = None
    log_file = None
    try:
        config = write_config(root)
        began = time.perf_counter()
        states = fill_history(root / "state", arguments.jobs)
        print(
            f"history: {arguments.jobs} jobs ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))})"
            f" written in {time.perf_counter() - began:.1f}s"
        )
        base = f"http://{listen_of(config)}"
        log_path = root / "agent.log"
        log_file = log_path.open("wb")
        agent = subprocess.Popen(
            [*HB2R, "run", str(config)], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        took = wait_for_200(f"{base}/health", agent, deadline=START_DEADLINE, what="hb2r run", log=log_path)
        print(f"hb2r run answered /health {took:.1f}s after its start (pid {agent.pid}, {base})")
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)], cwd=REPO, stdin=subprocess.DEVNULL)
        bare_url = f"http://127.0.0.1:{bare_port}/health"
        wait_for_200(bare_url, bare, deadline=START_DEADLINE, what="the bare aiohttp server", log=None)
        token = login(base)
        page = get_json(f"{base}/api/jobs?limit=100", token)
        listed = page.get("jobs")
        if not isinstance(listed, list) or len(listed) != 100:
            raise BenchError(f"GET /api/jobs?limit=100 did not list 100 jobs: {str(page)[:300]}")
        print(f"GET /api/jobs?limit=100 answers {len(json.dumps(page))} bytes; /health: ", end="")
        with urllib.request.urlopen(f"{base}/health", timeout=5) as response:  # noqa: S310
            print(json.loads(response.read())["status"])
        print(
            f"load: {arguments.workers} keep-alive workers, {arguments.warmup:g}s warm-up + {arguments.seconds:g}s"
            f" measured, {arguments.rounds} rounds; storm: {arguments.storm_workers} workers, bcrypt cost"
            f" {BCRYPT_COST}; {os.cpu_count()} cores",
            flush=True,
        )
        agent_ps, bare_ps = psutil.Process(agent.pid), psutil.Process(bare.pid)
        rounds = []
        for number in range(1, arguments.rounds + 1):
            print(f"== round {number}", flush=True)
            rounds.append(
                one_round(
                    base, bare_url, agent_ps, bare_ps, token, workers=arguments.workers,
                    storm_workers=arguments.storm_workers, seconds=arguments.seconds, warmup=arguments.warmup,
                )
            )  # fmt: skip
            for process, what in ((agent, "hb2r run"), (bare, "the bare aiohttp server")):
                if process.poll() is not None:
                    raise BenchError(f"{what} died during round {number} (exit {process.returncode})")
        report(rounds)
    except (BenchError, OSError, urllib.error.URLError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        code = stop(agent)
        stop(bare, grace=5)
        if log_file is not None:
            log_file.close()
        if code not in (None, 0):
            tail = (root / "agent.log").read_text(errors="replace")[-2000:]
            print(f"NOTE: hb2r run exited {code} on SIGTERM; its log ends:\n{tail}", file=sys.stderr)
        if arguments.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
