"""One claiming host, as its own process with its own connection: for the two-process claim test and
`bench/hosts.py`.

    python tests/support/claimer.py STORE HOST PAUSE LIBRARY...

STORE is a postgresql:// URL or a SQLite state folder. The process opens the store, prints
`ready`, waits for a line on stdin (so that every host starts claiming at once), then claims
until the queue of those libraries is empty, and prints `done`. Each claimed job is published
at once (`finish_claimed`: job done, ledger row written, fenced by the token), so that as on
real hosts only a few jobs run at any time. Every claim is printed as a line
`<job id> <token> <seconds the claim took> <published: 1, or 0 if another token held the job>`.

PAUSE (seconds) is the "encode" between one job and the next claim. With 0 (the benchmark's
throughput) one claimer empties the 2,000-job queue in about half a second, so one that a loaded
machine schedules late, or that SQLite's busy handler leaves asleep while the other commits
again and again, may claim nothing at all. Real hosts spend minutes between claims; the test's
pause of a few milliseconds keeps the claimers interleaved the same way.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from agent.domain import LedgerEntry
from agent.store import postgres_schema
from agent.store.database_store import DatabaseStore
from agent.store.leases import LeaseLost
from agent.store.postgres import connect_postgres
from agent.store.sqlite import open_store

LEASE = timedelta(minutes=10)


def open_any(location: str) -> DatabaseStore:
    """Return the store at location: a postgresql:// URL (migrated) or a SQLite state folder."""
    if location.startswith(("postgresql://", "postgres://")):
        database = connect_postgres(location)
        postgres_schema.migrate(database)
        return DatabaseStore(database)
    return open_store(Path(location))


class Claimed(NamedTuple):
    job_id: int
    token: int
    seconds: float  # what the claim took
    published: bool  # False: publishing found another token holding the job


def fill(store: DatabaseStore, *, count: int, libraries: list[str]) -> None:
    """Queue count jobs, spread over libraries, in one transaction."""
    now = datetime.now(UTC)
    with store.transaction():
        for number in range(count):
            library = libraries[number % len(libraries)]
            store.enqueue(
                library=library,
                rel_path=f"Show/E{number:05d}.mkv",
                fingerprint=f"{number}:f",
                preset_hash="p",
                output_path=f"{library}/Show/E{number:05d}.mkv",
                reason="new",
                now=now + timedelta(microseconds=number),
            )


class HostsRun(NamedTuple):
    claims: dict[str, list[Claimed]]  # each host's claims, in its order
    seconds: float  # from "go" until the last host had emptied the queue


def run_hosts(
    location: str, *, hosts: list[str], libraries: list[str], pause: float = 0.0, timeout: float = 300
) -> HostsRun:
    """Start one claimer process per host and let them all claim at once, until the queue is empty;
    each waits `pause` seconds after publishing a job before its next claim."""
    argv = [sys.executable, str(Path(__file__).resolve())]
    processes = {
        host: subprocess.Popen(
            [*argv, location, host, str(pause), *libraries],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in hosts
    }
    try:
        for host, process in processes.items():
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                _, err = process.communicate(timeout=timeout)
                raise RuntimeError(f"claimer {host} did not start: {line!r} {err.strip()[-2000:]}")
        began = time.perf_counter()
        for process in processes.values():
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        found = {}
        for host, process in processes.items():
            out, err = process.communicate(timeout=timeout)
            if process.returncode != 0 or not out.rstrip().endswith("done"):
                raise RuntimeError(f"claimer {host} failed ({process.returncode}): {err.strip()[-2000:]}")
            rows = out.rstrip().splitlines()[:-1]
            found[host] = [Claimed(int(a), int(b), float(c), d == "1") for a, b, c, d in (row.split() for row in rows)]
        return HostsRun(claims=found, seconds=time.perf_counter() - began)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def main(location: str, host: str, pause: float, libraries: list[str]) -> None:
    store = open_any(location)
    print("ready", flush=True)
    sys.stdin.readline()
    out = []
    while True:
        began = time.perf_counter()
        claim = store.claim(host, libraries=libraries, lease=LEASE, library_order=libraries)
        took = time.perf_counter() - began
        if claim is None:
            break
        job = claim.job
        entry = LedgerEntry(job.library, job.rel_path, job.fingerprint, 1, 1, job.preset_hash, job.output_path)
        now = datetime.now(UTC)
        try:
            store.finish_claimed(job.id, claim.token, entry, encoded_at=now.isoformat(), now=now)
            published = 1
        except LeaseLost:  # only if another host holds the job: what the tests look for
            published = 0
        out.append(f"{claim.job.id} {claim.token} {took:.6f} {published}")
        if pause:
            time.sleep(pause)  # the encode
    store.close()
    print("\n".join([*out, "done"]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:])
