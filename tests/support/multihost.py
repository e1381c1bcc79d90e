"""A test bench of several hb2r hosts on one machine: network namespaces, one bridge, bind mounts.

Why: issue 11's end-to-end test runs three `hb2r run` processes against one PostgreSQL and then
breaks things an operator's hosts break in life: a host killed mid-encode, a leader frozen past
its lease, a link cut, a library mount gone. A link can only be cut if each host has its own
network; a mount can only vanish for one host if each has its own mount of the library. This
module gives each agent both, with real kernel parts (iproute2, `mount --bind`), and removes them
again, even after a failed or killed run.

Design
- `Network` owns one *run*, named `h2n<N>` (N in 0..255). The run's private network is
  10.213.N.0/24: a Linux bridge `h2n<N>br` in the root namespace holds 10.213.N.1 (the gateway,
  where PostgreSQL listens), and each host gets a namespace `h2n<N>-<host>` with loopback up and
  one veth pair: `h2n<N>v<i>` on the bridge (root side), the peer inside the namespace with
  10.213.N.(10+i). Nothing but these names and this /24 is ever created, changed or removed: no
  other interface, route, sysctl or firewall rule. N is taken only where no address or route of
  the machine overlaps 10.213.N.0/24, so a run never shadows a real network.
- `cut(host)` sets the root-side veth down: the namespace's end loses its carrier, packets to
  the gateway go nowhere (no error, like a pulled cable; a TCP connect times out, established
  connections stall). `restore(host)` sets it up again (with STP off the port forwards at once)
  and flushes the neighbour entries both ends failed to resolve meanwhile: reachable on return.
- Mounts: the run owns a folder `<tmp>/hb2r-multihost/h2n<N>/`, bind-mounted onto itself and made
  *shared*. `ip netns exec` gives each command a new mount namespace that is a slave of the root
  one, so a mount or unmount under a shared folder reaches processes already running in the
  namespace: `Host.unmount()` takes the library away from a running agent, as a dropped NFS
  share would. Mount points live there, not under pytest's tmp_path, so that pytest's clean-up
  of old tmp folders never walks through a forgotten bind mount into a library.
- Ownership and stale runs: a run holds an exclusive `flock` on `<tmp>/hb2r-multihost/h2n<N>.lock`
  for its whole life; the kernel drops it when the process dies, however it dies. Every new
  `Network` first cleans each run whose lock it can take (a missing lock file is made, already
  locked): it kills the processes left in that run's namespaces (only those: `ip netns pids`),
  deletes the namespaces and links named `h2n<N>...`, lazily unmounts what is mounted under the
  run's folder and removes its (by then empty) folders with rmdir, never a recursive delete. A
  new run does the same to its own N once its lock is taken. Runs of other live sessions
  (parallel pytest processes) are left alone, their lock being held.
- `Host` is one agent: its namespace, its state folder, its config (store.url naming the gateway,
  password in a 0600 file, host.name, server.listen on the host's own address, a short
  store.lease), its own bind mount of the shared library, and its `hb2r run` process started with
  `ip netns exec` (which execs, so the Popen's pid is the agent's own: signals reach it
  directly). Its log (JSON lines) goes to `<root>/agent.log`.
- PostgreSQL: `network_cluster` starts a throwaway cluster (tests/support/postgres.py) that listens on
  127.0.0.1 and on the run's gateway and admits password logins from the run's /24 only;
  `SharedStore` (its database) makes the schema with the agent's code before the first host
  starts and audits every change of a job row and of the leader row (see multihost_checks).
- Faults: `Host.crash()` (SIGKILL to everything in the namespace: the agent and its encodes, as a
  machine that dies), `Host.kill(sig)` (the agent process only), `Host.signal_all(SIGSTOP /
  SIGCONT)` (the whole host frozen and thawed), `Network.cut/restore(host)`, `Host.unmount()`.

What the final assertions read is in multihost_checks.py (the store's audit of every job and
leader row change, the log events the runner and the leader write, and the checks over them).
With the fixtures of tests/e2e/conftest.py the issue's test reads about like this:

    nas, desktop, mini = (hosts(name) for name in ("nas1", "desktop", "mini"))
    for host in (nas, desktop, mini): host.start().wait_healthy(accept=("healthy", "degraded"))
    ... faults, each followed by wait_for(...) on what must happen next ...
    spans = lease_spans(shared_store.audit())
    assert double_leases(spans) == []
    assert claim_problems(logged_claims(events_of(all_hosts)), spans) == []
    assert leader_audit_problems(shared_store.audit()) == [] and leader_epoch_problems(events_of(all_hosts)) == []
    assert output_problems(library=library, archive=archive) == [] and temp_files(archive) == []
    assert ledger_problems(shared_store.rows("SELECT library, rel_path FROM ledger"), ...) == []
    assert checksums(library) == before
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from agent.config.load import load_config
from agent.store.choose import store_for
from tests.support.multihost_checks import AuditRow
from tests.support.outcomes import read_log

PREFIX = "h2n"
BASE = Path(tempfile.gettempdir()) / "hb2r-multihost"
REPO = Path(__file__).resolve().parents[2]
PRESET = "Very Fast 480p30"
AGENT_PORT = 8080  # each namespace has its own ports: the same one on every host
_RUN = re.compile(rf"^{PREFIX}(\d{{1,3}})(?=br$|v\d+$|-|$)")


def _ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _run_of(name: str) -> str | None:
    """The run (`h2n<N>`) a namespace, link or folder name belongs to, or None if not ours."""
    found = _RUN.match(name)
    return f"{PREFIX}{found.group(1)}" if found and int(found.group(1)) <= 255 else None


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _links() -> list[str]:
    return [link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")]


def _mount_points() -> list[Path]:
    """Mount points of this mount namespace, in mount order (unmount in reverse)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(Path(re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal.group(1), 8)), raw)))
    return points


def _mounts_under(folder: Path) -> list[Path]:
    return [point for point in _mount_points() if point == folder or folder in point.parents]


def _unmount(point: Path, *, lazy: bool = False) -> None:
    result = subprocess.run(
        ["umount", *(["--lazy"] if lazy else []), str(point)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"umount {point} failed: {result.stderr.strip()}")


def _remove_empty_folders(folder: Path) -> None:
    """rmdir folder and the empty folders under it; never delete a file (a mount may hide there)."""
    if not folder.is_dir() or _mounts_under(folder):
        return
    for path, _, _ in sorted(os.walk(folder), key=lambda entry: -len(Path(entry[0]).parts)):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL what a run left in its namespace (processes this harness started there) and reap-wait."""
    pids = [int(pid) for pid in _ip("netns", "pids", namespace, check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while pids and time.monotonic() < end:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _remove_run(run: str) -> None:
    """Remove everything of one run: processes in its namespaces, namespaces, links, mounts, folder."""
    for namespace in _namespaces():
        if _run_of(namespace) == run:
            _kill_namespace_processes(namespace)
            _ip("netns", "delete", namespace, check=False)
    for link in _links():
        if _run_of(link) == run:
            _ip("link", "delete", link, check=False)  # a veth's peer goes with it
    folder = BASE / run
    for point in reversed(_mounts_under(folder)):
        _unmount(point, lazy=True)
    _remove_empty_folders(folder)


def _take_lock(run: str) -> IO[str] | None:
    """Own run's lock, or None if a live process holds it.

    A missing lock file is made already locked (a locked temp file linked into place), so no one
    sees it unlocked; an existing one is taken only if free and still the file at that name (not
    one unlinked by its owner's clean-up and replaced by a new run's)."""
    path = BASE / f"{run}.lock"
    handle, temporary = tempfile.mkstemp(dir=BASE, prefix=".claim-")
    lock = os.fdopen(handle, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        os.link(temporary, path)
        return lock
    except FileExistsError:
        lock.close()
    finally:
        os.unlink(temporary)
    try:
        lock = path.open("a")
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
            return lock
    except (BlockingIOError, FileNotFoundError):
        pass
    lock.close()
    return None


def _release(run: str, lock: IO[str]) -> None:
    (BASE / f"{run}.lock").unlink(missing_ok=True)
    lock.close()


def clean_stale_runs() -> list[str]:
    """Remove every run whose owner is gone (its lock is free or missing); return their names."""
    BASE.mkdir(parents=True, exist_ok=True)
    names = [*_namespaces(), *_links(), *(path.name.removesuffix(".lock") for path in BASE.iterdir())]
    cleaned = []
    for run in sorted({run for name in names if (run := _run_of(name))}):
        lock = _take_lock(run)
        if lock is None:
            continue  # a live session's run
        try:
            _remove_run(run)
        finally:
            _release(run, lock)
        cleaned.append(run)
    return cleaned


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address or a route in (default routes aside)."""
    taken = []
    for interface in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for address in interface.get("addr_info", []):
            taken.append(ipaddress.IPv4Network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "default")
        if destination != "default" and not destination.startswith(("broadcast", "local")):
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(destination, strict=False))
    return taken


def _claim_run() -> tuple[int, IO[str]]:
    """Take a free N: no address or route of the machine in its /24, its lock ours, its leftovers gone."""
    taken = _taken_networks()
    for number in range(256):
        if any(ipaddress.IPv4Network(f"10.213.{number}.0/24").overlaps(network) for network in taken):
            continue
        lock = _take_lock(f"{PREFIX}{number}")
        if lock is None:
            continue
        _remove_run(f"{PREFIX}{number}")  # ours now: anything under its names is a leftover
        return number, lock
    raise RuntimeError("no free 10.213.N.0/24 for a test network")


@dataclass(frozen=True)
class Namespace:
    """One host's network namespace: its name for `ip netns`, its address, its link on the bridge."""

    host: str
    netns: str
    address: str
    link: str  # the root side of its veth pair, on the bridge
    peer: str  # the namespace's side of it


@dataclass
class Network:
    """One run's bridge, namespaces and bind mounts (see the module docstring)."""

    number: int
    lock: IO[str]
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    binds: list[Path] = field(default_factory=list)
    cut_hosts: set[str] = field(default_factory=set)

    @classmethod
    def create(cls) -> Network:
        if os.geteuid() != 0:
            raise RuntimeError("the multi-host tests make network namespaces, links and mounts: run them as root")
        clean_stale_runs()
        number, lock = _claim_run()
        network = cls(number=number, lock=lock)
        try:
            _ip("link", "add", network.bridge, "type", "bridge", "stp_state", "0")
            _ip("addr", "add", f"{network.gateway}/24", "dev", network.bridge)
            _ip("link", "set", network.bridge, "up")
            network.folder.mkdir(parents=True, exist_ok=True)  # a leftover kept by a stray file
            subprocess.run(["mount", "--bind", str(network.folder), str(network.folder)], check=True)
            subprocess.run(["mount", "--make-shared", str(network.folder)], check=True)
        except BaseException:
            network.close()
            raise
        return network

    @property
    def run(self) -> str:
        return f"{PREFIX}{self.number}"

    @property
    def bridge(self) -> str:
        return f"{self.run}br"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.number}.1"

    @property
    def cidr(self) -> str:
        return f"10.213.{self.number}.0/24"

    @property
    def folder(self) -> Path:
        return BASE / self.run

    def add(self, host: str) -> Namespace:
        """Make host's namespace (loopback up) joined to the bridge by a veth pair; return it."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", host) or host in self.namespaces:
            raise ValueError(f"host name {host!r}: lowercase letters, digits, '-', unique in the network")
        index = len(self.namespaces) + 1
        if index > 200:
            raise ValueError("at most 200 hosts in one network")
        namespace = Namespace(
            host=host,
            netns=f"{self.run}-{host}",
            address=f"10.213.{self.number}.{10 + index}",
            link=f"{self.run}v{index}",
            peer=f"{self.run}p{index}",
        )
        self.namespaces[host] = namespace
        peer = namespace.peer
        _ip("netns", "add", namespace.netns)
        _ip("link", "add", namespace.link, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", namespace.netns)
        _ip("link", "set", namespace.link, "master", self.bridge, "up")
        _ip("-n", namespace.netns, "link", "set", "lo", "up")
        _ip("-n", namespace.netns, "addr", "add", f"{namespace.address}/24", "dev", peer)
        _ip("-n", namespace.netns, "link", "set", peer, "up")
        return namespace

    def cut(self, host: str) -> None:
        """Pull host's cable: its root-side veth down (nothing reaches it, it reaches nothing)."""
        _ip("link", "set", self.namespaces[host].link, "down")
        self.cut_hosts.add(host)

    def restore(self, host: str) -> None:
        """Plug the cable back: the link up, and both ends forget the neighbours they failed to
        resolve while it was out (else the first connection after restore may still fail), so
        the fault ends when this returns."""
        namespace = self.namespaces[host]
        _ip("link", "set", namespace.link, "up")
        _ip("-n", namespace.netns, "neigh", "flush", "dev", namespace.peer)
        _ip("neigh", "flush", "to", namespace.address, "dev", self.bridge)
        self.cut_hosts.discard(host)

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv run inside host's namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespaces[host].netns, *argv]

    def run_in(self, host: str, argv: Sequence[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(host, argv), capture_output=True, text=True, check=False, timeout=timeout)

    def python_in(self, host: str, code: str, *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run Python code (this venv's interpreter) inside host's namespace."""
        return self.run_in(host, [sys.executable, "-c", code], timeout=timeout)

    def bind(self, source: Path, *, host: str, name: str) -> Path:
        """Bind-mount source onto host's own path for it (under the run's shared folder); return it."""
        point = self.folder / host / name
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), str(point)], check=True)
        self.binds.append(point)
        return point

    def unbind(self, point: Path) -> None:
        """Unmount a bind made by `bind` (the folder stays, empty: as an unmounted NFS share)."""
        _unmount(point)
        self.binds.remove(point)

    def close(self) -> None:
        """Remove the run's namespaces (and what runs in them), links, mounts and folder; release it."""
        try:
            _remove_run(self.run)
        finally:
            _release(self.run, self.lock)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


AUDIT_SQL = """
CREATE SCHEMA IF NOT EXISTS hb2r_audit;
CREATE TABLE IF NOT EXISTS hb2r_audit.changes (
    seq BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    table_name TEXT NOT NULL,
    row_after JSONB NOT NULL
);
CREATE OR REPLACE FUNCTION hb2r_audit.record() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO hb2r_audit.changes (table_name, row_after) VALUES (TG_TABLE_NAME, to_jsonb(NEW));
    RETURN NULL;
END
$$;
"""
AUDITED_TABLES = ("jobs", "leader")  # the leader row exists once the leader lease has landed


class SharedStore:
    """The hosts' database on the run's cluster.

    `url` (no password, the gateway's address) goes into the hosts' configs and `password` into
    their password files; the test's own queries use `local_url` (127.0.0.1). Before the first
    host starts, `prepare` makes the agent's schema (as the first agent would) and installs an
    audit trigger (hb2r_audit.changes, written by the superuser's function, outside the agent's
    schema) that records every change of a job row and of the leader row, on the database's
    clock: multihost_checks reads leases and epochs from it.
    """

    def __init__(self, *, url: str, password: str, local_url: str, admin_url: str) -> None:
        self.url = url
        self.password = password
        self.local_url = local_url
        self.admin_url = admin_url
        self.prepared = False

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.local_url, connect_timeout=5) as connection:
            return connection.execute(query, params).fetchall()  # type: ignore[arg-type]

    def prepare(self, config: Path) -> None:
        """Migrate the database with the agent's own code (config: any host's), then audit it."""
        store_for(load_config(config).config).close()
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(AUDIT_SQL)
            for table in AUDITED_TABLES:
                if admin.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone() == (None,):
                    continue
                admin.execute(f"DROP TRIGGER IF EXISTS hb2r_audit ON public.{table}")
                admin.execute(
                    f"CREATE TRIGGER hb2r_audit AFTER INSERT OR UPDATE ON public.{table} "
                    "FOR EACH ROW EXECUTE FUNCTION hb2r_audit.record()"
                )
        self.prepared = True

    def audit(self) -> list[AuditRow]:
        """Every audited change so far, in order."""
        with psycopg.connect(self.admin_url, connect_timeout=5) as admin:
            found = admin.execute("SELECT seq, at, table_name, row_after FROM hb2r_audit.changes ORDER BY seq")
            return [AuditRow(seq, at, table, row) for seq, at, table, row in found.fetchall()]


def host_config(
    *,
    name: str,
    address: str,
    library: Path,
    archive: Path,
    state: Path,
    store: SharedStore,
    password_file: Path,
    lease: str,
    max_jobs: int = 1,
) -> str:
    """The config text of one host: library `tv` at its own path, shared archive, shared store."""
    return f"""version: 1
paths: {{archive: {archive}, state_dir: {state}}}
libraries:
  - {{name: tv, source: {library}, output: TV, preset: tv, stable_after: 1s}}
presets:
  tv: {{handbrake: "{PRESET}", container: mkv}}
scan: {{interval: 1s}}
limits:
  cpu_percent: 100
  memory_percent: 100
  min_free_memory: 64MiB
  min_free_disk: 1MiB
  max_jobs: {max_jobs}
retry: {{attempts: 3, backoff: 1s, max_backoff: 2s}}
auth: {{jwt_secret_file: {state}/jwt.secret, bcrypt_rounds: 4}}
server: {{listen: "{address}:{AGENT_PORT}"}}
store:
  url: {store.url}
  password_file: {password_file}
  lease: {lease}
host: {{name: {name}}}
"""


class Host:
    """One hb2r host: namespace, state folder, config, bind mount of the library, `hb2r run` process."""

    def __init__(
        self,
        *,
        network: Network,
        name: str,
        root: Path,
        library: Path,
        archive: Path,
        store: SharedStore,
        lease: str = "3s",
    ) -> None:
        self.network = network
        self.name = name
        self.root = root
        self.store = store
        self.library_source = library
        self.namespace = network.add(name)
        self.state = root / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        password_file = root / "store.password"
        password_file.touch(mode=0o600)
        password_file.chmod(0o600)
        password_file.write_text(store.password + "\n")
        self.library = network.bind(library, host=name, name="tv")
        self.config = root / "config.yaml"
        self.config.write_text(
            host_config(
                name=name,
                address=self.namespace.address,
                library=self.library,
                archive=archive,
                state=self.state,
                store=store,
                password_file=password_file,
                lease=lease,
            )
        )
        self.log_path = root / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def health_url(self) -> str:
        return f"http://{self.namespace.address}:{AGENT_PORT}/health"

    def start(self, *, cpus: str | None = None) -> Host:
        """Start `hb2r run CONFIG` inside the namespace (log appended to agent.log); the first
        host to start prepares the store (schema and audit, see SharedStore). `cpus` (a taskset
        list, e.g. "0") pins the agent and so its encodes, which inherit it: a host of that many
        cores. taskset execs, as `ip netns exec` does: the Popen's pid is still the agent's."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"host {self.name} runs already (pid {self.process.pid})")
        if not self.store.prepared:
            self.store.prepare(self.config)
        pin = ["taskset", "-c", cpus] if cpus is not None else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*pin, *self.network.command(self.name, [sys.executable, "-m", "agent", "run", str(self.config)])],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send signum to the agent process only (its HandBrakeCLI children carry on: a frozen or
        killed agent, not a dead machine); reap it if it was a kill."""
        if self.process is None:
            raise RuntimeError(f"host {self.name} was never started")
        if self.process.poll() is None:
            self.process.send_signal(signum)
        if signum == signal.SIGKILL:
            self.process.wait(timeout=10)

    def signal_all(self, signum: int) -> list[int]:
        """Send signum to every process in the host's namespace (the agent and its encodes: the
        whole machine frozen with SIGSTOP, or dead with SIGKILL); return their pids."""
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def crash(self) -> None:
        """The host dies mid-work: SIGKILL to everything in its namespace, agent reaped."""
        self.signal_all(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        _kill_namespace_processes(self.namespace.netns)  # waits until none is left

    def processes(self) -> list[int]:
        """The pids running in the host's namespace (the agent, its HandBrakeCLI, probes)."""
        return [int(pid) for pid in _ip("netns", "pids", self.namespace.netns, check=False).stdout.split()]

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM (after SIGCONT to the whole host, in case it is frozen), wait; SIGKILL past
        timeout. Its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def unmount(self) -> None:
        """The library mount goes missing for this host only (its mount point stays, empty)."""
        self.network.unbind(self.library)

    def remount(self) -> None:
        self.network.bind(self.library_source, host=self.name, name="tv")

    def health(self) -> tuple[int, dict[str, Any] | None]:
        """GET /health from inside the namespace: (HTTP status or 0 if no answer, its JSON)."""
        result = self.network.run_in(
            self.name, ["curl", "-s", "--max-time", "1", "-w", "\n%{http_code}", self.health_url], timeout=10
        )
        body, _, status = result.stdout.rpartition("\n")
        try:
            return int(status or 0), json.loads(body) if body else None
        except json.JSONDecodeError:
            return int(status or 0), None

    def wait_healthy(self, *, deadline: float = 60.0, accept: Sequence[str] = ("healthy",)) -> dict[str, Any]:
        """Poll /health until its status is one of accept; fail naming the last answer and the log."""
        end = time.monotonic() + deadline
        last: tuple[int, dict[str, Any] | None] = (0, None)
        while time.monotonic() < end:
            if not self.running():
                raise AssertionError(f"host {self.name} exited ({self.exit_code()}):\n{self.log_tail()}")
            last = self.health()
            if last[1] is not None and last[1].get("status") in accept:
                return last[1]
            time.sleep(0.2)
        raise AssertionError(f"host {self.name} not {'/'.join(accept)} in {deadline}s: {last}\n{self.log_tail()}")

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The agent's JSON log lines (all, or those whose event is name)."""
        entries = read_log(self.log_path) if self.log_path.exists() else []
        return [entry for entry in entries if name is None or entry.get("event") == name]


def events_of(hosts: Iterable[Host]) -> list[dict[str, Any]]:
    """All hosts' log lines together (for the checks that look across hosts)."""
    return [entry for host in hosts for entry in host.events()]


@contextlib.contextmanager
def network_run() -> Iterator[Network]:
    network = Network.create()
    try:
        yield network
    finally:
        network.close()
