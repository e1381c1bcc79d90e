"""Does the queue stay fast at a million rows? The read endpoints of `hb2r run` on a big state.

Set-up, in a temp folder, twice: a config with two libraries whose watched folders are empty
(`tv`, and `movies`, paused by an operator so that its queued jobs stay queued and no encode
starts), `scan.interval: 1h` (one pass, at the start), the API on a free loopback port, one
user (bcrypt cost 4: logging in is not what is measured). One state stays empty: the baseline.
The other is filled before the start, by SQL in one transaction (a recursive CTE: seconds, not
minutes), with `--jobs` jobs (90 % done, 5 % cancelled, 3 % dead, 2 % queued in the paused
library `movies`, which has a quarter of the others) and as many ledger rows (90 % with their output size), and a
last scan that saw the folders empty, so the vanish breaker pauses nothing.

Then `python -m agent run CONFIG` (with PYTHONPATH=--agent-root, so the same bench measures
another checkout, e.g. main), polled on /health until 200, then on /api/status until the
first pass has finished (what it took is printed: that pass reads the whole ledger, the other
items of issue 12). Then, one client, one request at a time on a keep-alive connection, each
endpoint in turn (`--requests` each after 20 warm-up ones): GET /api/jobs?limit=100, the same
for the queued jobs (a filter by state), /api/status, /health, /metrics. Latency from send to
the whole body read, by time.perf_counter; p50 and p99. Then the agent's CPU over `--idle`
seconds with no request: what the dispatcher's tick costs each second on that state.

Printed for each endpoint: p50 and p99 on the full state, on the empty one (the baseline of
the same run), their ratio, and the target (p99 <= 50 ms, issue 12): OK or MISS. Exits 1 if an
agent fails to start or answers anything but 200; a missed target prints MISS and exits 0.

    .venv/bin/python bench/queue.py [--jobs 1000000] [--requests 300] [--idle 10] [--agent-root DIR] [--keep DIR]
    quick: .venv/bin/python bench/queue.py --jobs 10000 --requests 50 --idle 2
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path.insert(0, str(REPO))  # for tests.support; the measured agent runs in children

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from tests.support.ports import free_port  # noqa: E402

USER = "bench"
PASSWORD = "bench-password-queue"  # noqa: S105 - a throwaway user of a temp agent
START_DEADLINE = 120.0
PASS_DEADLINE = 600.0
TARGET_P99 = 0.050
WARMUP_REQUESTS = 20

# Run in a child with the measured checkout on sys.path: its migrations make the schema, then
# one transaction writes the rows. SQL outside agent/ is allowed in bench/ (it fakes a history).
FILL = """
import sys, time
from pathlib import Path
from agent.store.db import open_database

state, count = Path(sys.argv[1]), int(sys.argv[2])
database = open_database(state)
started = time.perf_counter()
database.connection.executescript(f'''
BEGIN IMMEDIATE;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
INSERT INTO jobs (id, library, rel_path, fingerprint, preset_hash, output_path, reason, state, attempts,
                  error, created_at, updated_at)
SELECT i, CASE WHEN i % 4 = 0 OR i % 100 >= 98 THEN 'movies' ELSE 'tv' END,
       printf('Show %05d/Episode %07d.mkv', i / 100, i), printf('%032x', i * 7919), 'b',
       printf('TV/Show %05d/Episode %07d.mkv', i / 100, i), 'new',
       CASE WHEN i % 100 < 90 THEN 'done' WHEN i % 100 < 95 THEN 'cancelled' WHEN i % 100 < 98 THEN 'dead'
            ELSE 'queued' END,
       1, CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'HandBrakeCLI exited with status 3' END,
       strftime('%Y-%m-%dT%H:%M:%f000+00:00', '2026-01-01', printf('+%d seconds', i)),
       strftime('%Y-%m-%dT%H:%M:%f000+00:00', '2026-01-01', printf('+%d seconds', i + 60))
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at,
                    output_size)
SELECT CASE WHEN i % 4 = 0 THEN 'movies' ELSE 'tv' END, printf('Show %05d/Episode %07d.mkv', i / 100, i),
       printf('%032x', i * 7919), 1000000000 + i, i, 'b', printf('TV/Show %05d/Episode %07d.mkv', i / 100, i),
       '2026-01-01T00:00:00+00:00', CASE WHEN i % 10 <> 0 THEN 300000000 + i END
FROM n;
COMMIT;
''')
database.execute("INSERT INTO library_holds (library, reason, since) VALUES ('movies', 'bench', '2026-01-01')")
for library in ("tv", "movies"):
    database.execute(
        "INSERT INTO library_scans (library, file_count, scanned_at) VALUES (?, 0, '2026-01-01T00:00:00+00:00')",
        (library,),
    )
found = dict(database.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
database.close()
print(f"{time.perf_counter() - started:.1f}", found)
"""


class BenchError(Exception):
    """Something the benchmark needs failed to run."""


def child_env(agent_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(agent_root)}


def write_config(root: Path, agent_root: Path) -> tuple[Path, str]:
    for folder in ("tv", "movies", "archive", "archive/TV", "archive/Movies"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from agent.passwords import hash_password; print(hash_password({PASSWORD!r}, rounds=4))",
        ],
        env=child_env(agent_root),
        cwd=agent_root,  # `python -c` puts the working folder first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    listen = f"127.0.0.1:{free_port()}"
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        "  - {name: tv, source: tv, output: TV, preset: tv}\n"
        "  - {name: movies, source: movies, output: Movies, preset: tv}\n"
        "presets:\n"
        "  tv: {handbrake: 'Very Fast 480p30', container: mkv}\n"
        "scan: {interval: 1h}\n"
        f"server: {{listen: '{listen}'}}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
        "users:\n"
        f'  - {{name: {USER}, role: user, password_hash: "{made.stdout.strip()}"}}\n'
    )
    return config, f"http://{listen}"


def fill(state_dir: Path, count: int, agent_root: Path) -> str:
    made = subprocess.run(
        [sys.executable, "-c", FILL, str(state_dir), str(count)],
        env=child_env(agent_root),
        cwd=agent_root,
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise BenchError(f"filling the state failed:\n{made.stderr[-3000:]}")
    return made.stdout.strip()


def wait_until(check: object, *, deadline: float, what: str, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise BenchError(f"the agent exited ({process.returncode}) before {what}\n{log.read_text()[-3000:]}")
        try:
            if check():  # type: ignore[operator]
                return time.perf_counter() - started
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.perf_counter() - started > deadline:
            raise BenchError(f"no {what} within {deadline:.0f} s\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own loopback URL
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""


def login(base: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base}/api/auth/login",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return str(json.loads(response.read())["token"])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float

    @staticmethod
    def of(samples: list[float]) -> Latency:
        ordered = sorted(samples)
        return Latency(ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


async def measure(url: str, token: str, *, requests: int) -> Latency:
    """One client, one request at a time on one keep-alive connection; raise BenchError on a non-200."""
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), headers=headers) as session:
        for number in range(WARMUP_REQUESTS + requests):
            began = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"{url} answered {response.status}")
            if number >= WARMUP_REQUESTS:
                samples.append(time.perf_counter() - began)
    return Latency.of(samples)


ENDPOINTS = (
    ("/api/jobs?limit=100", True),
    ("/api/jobs?limit=100&state=queued", False),
    ("/api/status", True),
    ("/health", False),
    ("/metrics", False),
)


@dataclass(frozen=True)
class Run:
    latencies: dict[str, Latency]
    idle_cpu: float  # share of one core
    first_pass: float | None
    started_in: float


def one_agent(root: Path, *, count: int, agent_root: Path, requests: int, idle: float) -> Run:
    config, base = write_config(root, agent_root)
    if count:
        print(f"  filled {count:,} jobs and ledger rows: {fill(root / 'state', count, agent_root)}", flush=True)
    log = root / "agent.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", str(config)], cwd=root, env=child_env(agent_root),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        started_in = wait_until(
            lambda: get(f"{base}/health")[0] == 200, deadline=START_DEADLINE, what="/health 200", process=process,
            log=log,
        )  # fmt: skip
        token = login(base)
        wait_until(
            lambda: json.loads(get(f"{base}/api/status", token)[1])["plan"] is not None,
            deadline=PASS_DEADLINE, what="first pass", process=process, log=log,
        )  # fmt: skip
        first_pass = json.loads(get(f"{base}/api/status", token)[1])["plan"]["seconds"]
        latencies = {}
        for path, _ in ENDPOINTS:
            latencies[path] = asyncio.run(measure(f"{base}{path}", token, requests=requests))
        agent = psutil.Process(process.pid)
        before = sum(agent.cpu_times()[:2])
        time.sleep(idle)
        idle_cpu = (sum(agent.cpu_times()[:2]) - before) / idle
        return Run(latencies, idle_cpu, first_pass, started_in)
    finally:
        stop(process)


def report(full: Run, empty: Run, *, count: int) -> None:
    print(f"\n== {count:,} jobs and ledger rows against an empty state (same run); target p99 <= 50 ms")
    print(f"  {'endpoint':<36} {'p50':>9} {'p99':>9}   {'empty p50':>9} {'empty p99':>9}   p99 ratio  target")
    for path, targeted in ENDPOINTS:
        mine, base = full.latencies[path], empty.latencies[path]
        verdict = ("OK" if mine.p99 <= TARGET_P99 else "MISS") if targeted else "(no target)"
        print(
            f"  {path:<36} {mine.p50 * 1000:6.2f} ms {mine.p99 * 1000:6.2f} ms   {base.p50 * 1000:6.2f} ms"
            f" {base.p99 * 1000:6.2f} ms   {mine.p99 / base.p99:7.1f}x  {verdict}"
        )
    print(f"  agent CPU while idle: {full.idle_cpu:.1%} of a core (empty state: {empty.idle_cpu:.1%})")
    print(f"  start to /health 200: {full.started_in:.1f} s (empty: {empty.started_in:.1f} s)")
    if full.first_pass is not None:
        print(f"  first pass (reads the whole ledger; issue 12 items 2-3): {full.first_pass:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs, and as many ledger rows")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per endpoint")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle agent CPU measured")
    parser.add_argument("--agent-root", type=Path, default=REPO, help="the hb2r checkout to measure")
    parser.add_argument("--keep", type=Path, help="keep the temp folders here")
    arguments = parser.parse_args()
    agent_root = arguments.agent_root.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="hb2r-bench-queue-", dir=arguments.keep))
    print(f"hb2r from {agent_root}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in {scratch}", flush=True)
    try:
        print("empty state:", flush=True)
        empty = one_agent(scratch / "empty", count=0, agent_root=agent_root, requests=arguments.requests,
                          idle=arguments.idle)  # fmt: skip
        print(f"{arguments.jobs:,} jobs:", flush=True)
        full = one_agent(scratch / "full", count=arguments.jobs, agent_root=agent_root, requests=arguments.requests,
                         idle=arguments.idle)  # fmt: skip
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        if arguments.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    report(full, empty, count=arguments.jobs)


if __name__ == "__main__":
    main()
