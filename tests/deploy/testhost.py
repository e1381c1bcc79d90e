"""A throwaway Debian host with real systemd as PID 1, for deployment tests.

``ensure_root(suite)`` builds a minimal Debian root of ``suite`` (one of ``SUITES``: ``bookworm``, Debian 12 with
Python 3.11 and systemd 252, the default; ``trixie``, Debian 13 with Python 3.13 and systemd 257) with ``debootstrap``
once and keeps it in ``CACHE_DIR`` (``$HB2R_TESTHOST_CACHE``, default ``/var/cache/hb2r-testhost``), outside the
repository. The root's name includes the suite and a hash of ``ROOT_PACKAGES`` and of the customisation below, so
changing either builds a new root; old roots stay in the cache until removed by hand. The build machine's
``debian-archive-keyring`` checks the suite's Release file (bookworm's keyring holds trixie's keys too).

Besides what systemd, SSH and Ansible need, the root already holds what an hb2r deploy installs (``python3-venv``,
``handbrake-cli``, ``sqlite3``, ``curl``, ...), so deploys against it do not spend minutes on apt inside the
container; a playbook's ``apt`` tasks then find the packages present.

``boot_test_host(workdir, suite=...)`` boots that root with ``systemd-nspawn --volatile=overlay`` (the cached root stays
read-only and every boot starts clean) and yields a ``TestHost`` reachable by SSH on ``127.0.0.1:ssh_port``:

* ``--register=no --keep-unit`` because these machines have no system bus (PID 1 is not systemd);
* no private network: the container shares the host's network namespace, so its sshd listens on 127.0.0.1 and a
  free port only, set by a per-boot ``sshd_config.d`` drop-in that is bind-mounted read-only together with the
  per-boot ``authorized_keys`` (the key pair is made in ``workdir``); nothing else in the root listens on a port;
* units that make no sense in such a container are masked in the root (see ``MASKED_UNITS``);
* each boot gets its own cgroup (``hb2r-testhost-<machine>`` next to the caller's, in the name=systemd and cgroup2
  hierarchies): with ``--keep-unit`` nspawn would otherwise put ``payload``/``supervisor`` cgroups next to the caller's,
  shared by parallel containers and left behind after exit;
* ``TestHost.run`` runs commands inside through ``nsenter -t LEADER -a``;
* a deployed service that listens on a port listens on the host's network too: bind it to 127.0.0.1 and a free
  port, as the sshd drop-in does;
* leaving the context stops the container (SIGTERM to systemd-nspawn, a second one after 10 s, then SIGKILL) and
  leaves no process or mount behind, also when the body raises. A container left by a run that was killed is
  stopped by the next boot (see ``_reap_stale_boots``); systemd-nspawn also gets SIGTERM when its parent dies.

Needs root, ``systemd-container``, ``debootstrap`` and ``openssh-client`` (``scripts/install-system-packages.sh``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.support.ports import free_port

CACHE_DIR = Path(os.environ.get("HB2R_TESTHOST_CACHE", "/var/cache/hb2r-testhost"))

SUITES: tuple[str, ...] = ("bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The list (systemd, SSH, Python for Ansible) plus what an hb2r deploy installs and a few tools for checks.
ROOT_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "openssh-server",
    "python3-venv",
    "python3-apt",  # Ansible's apt module needs it and would otherwise install it first
    "handbrake-cli",
    "ffmpeg",  # ffprobe: the agent verifies each output's duration with it
    "sqlite3",
    "curl",
    "ca-certificates",
    "iproute2",
    "procps",
    "postgresql",  # the hb2r_postgres role's server (no cluster starts at boot: see _customise_root)
    "libpq5",  # what psycopg loads on an agent whose store is PostgreSQL
    "postgresql-client",  # pg_dump, for hb2r backup of a PostgreSQL store
)
# Units that misbehave in a container sharing the host's network, masked in the root:
# apt's daily timers would take the dpkg lock (or upgrade packages) in the middle of a deploy test.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
)
# Bump when _customise_root changes in a way that needs a new root.
ROOT_FORMAT = 2

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-hb2r-testhost.conf"
AUTHORIZED_KEYS = "/etc/ssh/hb2r-testhost.authorized_keys"
BOOT_TIMEOUT = 120.0
STOP_GRACE = 10.0

log = logging.getLogger(__name__)


class CommandFailed(subprocess.CalledProcessError):
    """A command inside the test host exited non-zero; the message carries its stdout and stderr."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{self.stdout or ''}\n--- stderr ---\n{self.stderr or ''}"
        ).rstrip()


class TestHostError(RuntimeError):
    """The test host could not be built, booted or stopped."""


# --- the cached root ------------------------------------------------------------------------------------------------


def _check_suite(suite: str) -> None:
    if suite not in SUITES:
        raise ValueError(f"unknown test host suite {suite!r}; known: {', '.join(SUITES)}")


def root_name(suite: str = DEFAULT_SUITE) -> str:
    """The cache folder name of the ``suite`` root for the current package list and customisation."""
    _check_suite(suite)
    spec = {"suite": suite, "packages": sorted(ROOT_PACKAGES), "masked": sorted(MASKED_UNITS), "format": ROOT_FORMAT}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{suite}-{digest}"


def ensure_root(suite: str = DEFAULT_SUITE) -> Path:
    """Return the cached Debian root of ``suite``, building it first if needed (minutes; safe against parallel runs)."""
    root = CACHE_DIR / root_name(suite)
    if root.is_dir():  # only ever appears complete, by an atomic rename
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE_DIR / ".build.lock") as lock:
        if root.is_dir():  # another run built it while we waited
            return root
        _remove_stale_builds()
        building = Path(tempfile.mkdtemp(prefix=f".build-{root.name}-", dir=CACHE_DIR))
        try:
            started = time.monotonic()
            _debootstrap(building, lock, suite)
            _customise_root(building)
            building.chmod(0o755)
            building.rename(root)
            log.info("built test host root %s in %.0f s", root, time.monotonic() - started)
        except BaseException:
            _remove_tree(building)
            raise
    return root


def apt_mirror(suite: str = DEFAULT_SUITE) -> str:
    """The Debian mirror this machine's apt uses for ``suite`` (``$HB2R_TESTHOST_MIRROR`` overrides it); the
    default mirror if none of its sources names the suite (as a bookworm machine's do not name trixie)."""
    if mirror := os.environ.get("HB2R_TESTHOST_MIRROR"):
        return mirror
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for paragraph in path.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in paragraph.splitlines():
                if line.strip().startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
                and "main" in fields.get("components", "").split()
                and fields.get("enabled", "yes").lower() != "no"
            ):
                for uri in fields.get("uris", "").split():
                    if uri.startswith(("http://", "https://")):
                        return uri
    lists = [Path("/etc/apt/sources.list"), *(sorted(sources.glob("*.list")) if sources.is_dir() else [])]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] != ["deb"]:
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 3 and words[1] == suite and "main" in words[2:] and words[0].startswith("http"):
                return words[0]
    return DEFAULT_MIRROR


def _debootstrap(target: Path, lock: int, suite: str) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    debs = CACHE_DIR / "debs"  # kept between builds, so a rebuild downloads only what changed
    debs.mkdir(parents=True, exist_ok=True)
    argv = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(ROOT_PACKAGES)}",
        f"--cache-dir={debs}",
        suite,
        str(target),
        apt_mirror(suite),
    ]
    log.info("building test host root: %s", shlex.join(argv))
    with tempfile.TemporaryFile(mode="w+") as output:
        # debootstrap inherits the lock, so if this process dies, the next run waits for an orphaned debootstrap
        # to finish before it removes the half-built root.
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, check=False, pass_fds=(lock,)
        )
        if result.returncode != 0:
            output.seek(0)
            tail = "".join(output.readlines()[-40:])
            debootstrap_log = target / "debootstrap" / "debootstrap.log"
            if debootstrap_log.is_file():
                lines = debootstrap_log.read_text(errors="replace").splitlines(True)
                tail += "\n--- debootstrap.log ---\n" + "".join(lines[-40:])
            raise TestHostError(f"{shlex.join(argv)} exited {result.returncode}:\n{tail}")


def _customise_root(root: Path) -> None:
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    # debootstrap copies the build machine's hostname; without it the container keeps its machine name.
    (root / "etc/hostname").unlink(missing_ok=True)
    # The per-boot sshd drop-in and authorized_keys are bind-mounted over these (nspawn wants the targets to exist).
    (root / SSHD_DROP_IN.lstrip("/")).write_text("# replaced at boot by tests/deploy/testhost.py\n")
    (root / AUTHORIZED_KEYS.lstrip("/")).write_text("")
    # A cluster the postgresql package made (debootstrap's bookworm makes none) would start at boot on port 5432 of
    # the host's network: only a deploy (the hb2r_postgres role) starts one, on the address and port a test gives.
    for start_conf in (root / "etc/postgresql").glob("*/*/start.conf"):
        start_conf.write_text("manual\n")
    for leftover in (root / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()


def _remove_stale_builds() -> None:
    """Remove half-built roots of crashed runs (the caller holds the build lock, so no build is in progress)."""
    for stale in CACHE_DIR.glob(".build-*"):
        log.warning("removing the unfinished test host root %s", stale)
        _remove_tree(stale)


def _remove_tree(path: Path) -> None:
    # A killed debootstrap may leave /proc or /sys mounted inside; never recurse into those.
    for mount_point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False, capture_output=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """Hold an exclusive flock on ``path``; yields the file descriptor."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()  # closing the file releases the lock (unless a child still holds it)


# --- processes and mounts -------------------------------------------------------------------------------------------


def _mounts_under(path: Path | str) -> list[str]:
    """Mount points in this mount namespace at or below ``path``."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (to tell a reused pid apart), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _alive(pid: int, start_time: int | None) -> bool:
    return start_time is not None and _start_time(pid) == start_time


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        table[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), comm)
    return table


def _container_leader(nspawn_pid: int) -> int | None:
    """The container's PID 1 (a descendant of systemd-nspawn running ``systemd``), once it has exec'ed."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    pending = list(children.get(nspawn_pid, []))
    while pending:
        pid = pending.pop()
        if table[pid][1] == "systemd":
            return pid
        pending.extend(children.get(pid, []))
    return None


def _wait_until(what: str, deadline: float, probe: Callable[[], bool], interval: float = 0.1) -> None:
    """Call ``probe`` until it returns true; raise TestHostError once ``deadline`` (monotonic) has passed."""
    while not probe():
        if time.monotonic() >= deadline:
            raise TestHostError(f"timed out waiting for {what}")
        time.sleep(interval)


def _cgroup_hierarchies() -> list[Path]:
    """This process's cgroup in each hierarchy systemd tracks processes in (name=systemd v1 and/or cgroup2)."""
    mine: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        mine[controllers] = path
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4]
            fstype, _, options = right.split()[:3]
            if fstype == "cgroup2" and "" in mine:
                found.append(Path(mount_point) / mine[""].lstrip("/"))
            elif fstype == "cgroup" and "name=systemd" in options.split(",") and "name=systemd" in mine:
                found.append(Path(mount_point) / mine["name=systemd"].lstrip("/"))
    return found


def _make_cgroups(machine: str) -> list[Path]:
    """A cgroup per boot for systemd-nspawn --keep-unit, which otherwise puts its ``payload`` and ``supervisor``
    cgroups next to the caller's (here: the root cgroup, shared by all containers and left behind after exit)."""
    made = []
    for parent in _cgroup_hierarchies():
        path = parent / f"hb2r-testhost-{machine}"
        try:
            path.mkdir()
        except OSError as error:
            log.warning("cannot make cgroup %s (%s); systemd-nspawn will use its caller's", path, error)
            continue
        made.append(path)
    return made


def _remove_cgroups(paths: list[Path]) -> None:
    for top in paths:
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        if top.exists():
            log.warning("cgroup %s could not be removed (processes left?)", top)


def _clean_up_after(machine: str, root: Path | None, cgroups: list[Path]) -> None:
    """Remove what a stopped container may leave in the host's namespaces: mounts, nspawn's directory, cgroups."""
    propagate = Path("/run/systemd/nspawn/propagate") / machine
    leftovers = _mounts_under(propagate) + (_mounts_under(root) if root else [])
    for mount_point in sorted(leftovers, key=len, reverse=True):
        log.warning("unmounting %s left by test host %s", mount_point, machine)
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
    with contextlib.suppress(OSError):
        propagate.rmdir()
    _remove_cgroups(cgroups)


def _nspawn_preexec(cgroups: list[Path]) -> Callable[[], None]:
    def preexec() -> None:
        for cgroup in cgroups:  # move into the boot's own cgroup before exec
            with contextlib.suppress(OSError), open(cgroup / "cgroup.procs", "w") as procs:
                procs.write("0\n")
        # have the kernel send SIGTERM to systemd-nspawn (an orderly shutdown) if the test process dies
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _signal(pid: int, start_time: int | None, signum: int) -> None:
    if _alive(pid, start_time):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _terminate_nspawn(
    pid: int, start_time: int | None, leader: int | None, leader_start: int | None, wait: Callable[[float], bool]
) -> None:
    """SIGTERM (orderly shutdown), a second SIGTERM (immediate stop) after STOP_GRACE, then SIGKILL."""
    for signum in (signal.SIGTERM, signal.SIGTERM):
        _signal(pid, start_time, signum)
        if wait(STOP_GRACE):
            break
    else:
        log.warning("systemd-nspawn %d ignored two SIGTERMs; killing it and the container", pid)
        if leader is not None:
            _signal(leader, leader_start, signal.SIGKILL)  # PID 1 of a pid namespace: takes all of it along
        _signal(pid, start_time, signal.SIGKILL)
        wait(STOP_GRACE)
    if leader is not None:
        _wait_until(f"the container's PID 1 ({leader}) to exit", time.monotonic() + STOP_GRACE,
                    lambda: not _alive(leader, leader_start))


# --- bookkeeping of running containers, to stop those left by killed runs ----------------------------------------


def _run_dir() -> Path:
    path = CACHE_DIR / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record_boot(machine: str, record: dict[str, Any]) -> Path:
    path = _run_dir() / f"{machine}.json"
    path.write_text(json.dumps(record))
    return path


def _reap_stale_boots() -> None:
    """Stop containers whose test process is gone (killed runs) and drop their records."""
    for path in _run_dir().glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(record["owner_pid"], record["owner_start"]):
            continue  # a run in progress (maybe a parallel one)
        if _alive(record["nspawn_pid"], record["nspawn_start"]):
            log.warning("stopping the stale test host %s left by a killed run", path.stem)
            pid, start = record["nspawn_pid"], record["nspawn_start"]

            def gone(seconds: float, pid: int = pid, start: int = start) -> bool:
                try:
                    _wait_until(f"systemd-nspawn {pid} to exit", time.monotonic() + seconds,
                                lambda: not _alive(pid, start))  # fmt: skip
                except TestHostError:
                    return False
                return True

            _terminate_nspawn(pid, start, record.get("leader_pid"), record.get("leader_start"), gone)
        _clean_up_after(path.stem, None, [Path(cgroup) for cgroup in record.get("cgroups", [])])
        path.unlink(missing_ok=True)


# --- the test host --------------------------------------------------------------------------------------------------


@dataclass
class TestHost:
    """A booted container: SSH on 127.0.0.1:``ssh_port`` as root with ``private_key``; PID 1 is ``leader_pid``."""

    __test__ = False  # not a pytest test class

    name: str
    ssh_port: int
    private_key: Path
    leader_pid: int
    root: Path | None = field(default=None, repr=False, compare=False)
    console_log: Path | None = field(default=None, repr=False, compare=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _leader_start: int | None = field(default=None, repr=False, compare=False)
    _cgroups: list[Path] = field(default_factory=list, repr=False, compare=False)

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container (all its namespaces, as root, with a clean environment)."""
        result = self._nsenter(list(argv), input, timeout, text=True)
        if check and result.returncode != 0:
            raise CommandFailed(result.returncode, list(argv), result.stdout, result.stderr)
        return result

    def ssh_argv(self, *command: str) -> list[str]:
        """An ``ssh`` command line that runs ``command`` on the host as root (no host key checks)."""
        return [
            "ssh",
            "-i", str(self.private_key),
            "-p", str(self.ssh_port),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5",
            "root@127.0.0.1",
            *command,
        ]  # fmt: skip

    def write_inventory(self, path: Path, *, host_vars: dict[str, object] | None = None) -> Path:
        """Write an Ansible YAML inventory with group ``hb2r`` holding the one host ``testhost``; return ``path``."""
        variables: dict[str, object] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.ssh_port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.private_key),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            **(host_vars or {}),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"hb2r": {"hosts": {"testhost": variables}}}, sort_keys=False))
        return path

    def copy_in(self, source: Path, target: str) -> None:
        """Copy the host file ``source`` to the absolute path ``target`` inside, with its mode; creates parents."""
        if not target.startswith("/"):
            raise ValueError(f"copy_in needs an absolute target path, not {target!r}")
        mode = source.stat().st_mode & 0o7777
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" -- "$1"'
        with source.open("rb") as data:
            result = self._nsenter(["sh", "-c", script, "copy_in", target, f"{mode:o}"], data, 120, text=False)
        if result.returncode != 0:
            raise CommandFailed(result.returncode, ["copy_in", str(source), target], result.stdout, result.stderr)

    def stop(self) -> None:
        """Shut the container down (idempotent); afterwards no systemd-nspawn process or container mount is left."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            started = time.monotonic()

            def exited(seconds: float) -> bool:
                try:
                    process.wait(seconds)
                except subprocess.TimeoutExpired:
                    return False
                return True

            leader = self.leader_pid or None  # 0 until the container's systemd was found
            _terminate_nspawn(process.pid, _start_time(process.pid), leader, self._leader_start, exited)
            log.info("stopped test host %s in %.1f s", self.name, time.monotonic() - started)
        process.wait()
        _clean_up_after(self.name, self.root, self._cgroups)

    def _nsenter(
        self, argv: list[str], stdin: str | IO[bytes] | None, timeout: float, *, text: bool
    ) -> subprocess.CompletedProcess[Any]:
        if self._process is None or self._process.poll() is not None:
            raise TestHostError(f"test host {self.name} is not running")
        command = ["nsenter", "-t", str(self.leader_pid), "-a", "--", *argv]
        environment = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
        # nsenter forks into the container's pid namespace; a session of its own lets a timeout kill the child too.
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE if isinstance(stdin, str) else (stdin or subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=text,
            env=environment,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(stdin if isinstance(stdin, str) else None, timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    def _console_tail(self, lines: int = 40) -> str:
        if self.console_log is None or not self.console_log.is_file():
            return ""
        text = self.console_log.read_text(errors="replace").splitlines()
        return "\n--- console (last lines) ---\n" + "\n".join(text[-lines:])

    def _wait_until_ready(self, deadline: float) -> None:
        def system_up() -> bool:
            remaining = max(deadline - time.monotonic(), 1)
            try:
                state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=remaining)
            except subprocess.TimeoutExpired:
                return False
            return state.stdout.strip() in ("running", "degraded")

        def ssh_answers() -> bool:
            try:
                result = subprocess.run(
                    self.ssh_argv("true"), capture_output=True, stdin=subprocess.DEVNULL, timeout=30, check=False
                )
            except subprocess.TimeoutExpired:
                return False
            return result.returncode == 0

        for what, probe in (("systemd to finish booting", system_up), ("SSH to answer", ssh_answers)):
            try:
                _wait_until(f"{what} in test host {self.name}", deadline, probe)
            except TestHostError as error:
                detail = ""
                if self._process is not None and self._process.poll() is None:
                    for argv in (("systemctl", "is-system-running"), ("systemctl", "--failed", "--no-legend"),
                                 ("systemctl", "list-jobs", "--no-legend"), ("systemctl", "status", "ssh.service")):
                        with contextlib.suppress(Exception):
                            out = self.run(*argv, check=False, timeout=10)
                            detail += f"\n$ {shlex.join(argv)}\n{out.stdout}{out.stderr}"
                raise TestHostError(f"{error}{detail}{self._console_tail()}") from None


@contextlib.contextmanager
def boot_test_host(workdir: Path, *, name: str = "hb2r-test", suite: str = DEFAULT_SUITE) -> Iterator[TestHost]:
    """Boot a fresh container from the cached root of ``suite`` and yield it; it is stopped and cleaned up on exit."""
    root = ensure_root(suite)
    _reap_stale_boots()
    machine = f"{name}-{secrets.token_hex(4)}"
    bootdir = workdir / machine
    bootdir.mkdir(parents=True)
    private_key = bootdir / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", machine, "-f", str(private_key)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    authorized_keys = bootdir / "authorized_keys"
    authorized_keys.write_text(private_key.with_suffix(".pub").read_text())
    authorized_keys.chmod(0o600)
    port = free_port()
    sshd_drop_in = bootdir / "sshd.conf"
    sshd_drop_in.write_text(
        "# per-boot settings of the hb2r test host: the container shares the host's network\n"
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        f"AuthorizedKeysFile .ssh/authorized_keys {AUTHORIZED_KEYS}\n"
        "UseDNS no\n"
    )
    sshd_drop_in.chmod(0o644)
    console_log = bootdir / "console.log"
    argv = [
        shutil.which("systemd-nspawn") or "systemd-nspawn",
        "--directory", str(root),
        "--boot",
        "--machine", machine,
        "--register=no",  # no system bus on these machines
        "--keep-unit",
        "--console=passive",
        "--volatile=overlay",  # the cached root stays untouched; writes go to a tmpfs
        f"--bind-ro={sshd_drop_in}:{SSHD_DROP_IN}",
        f"--bind-ro={authorized_keys}:{AUTHORIZED_KEYS}",
    ]  # fmt: skip
    started = time.monotonic()
    deadline = started + BOOT_TIMEOUT
    cgroups = _make_cgroups(machine)
    try:
        with console_log.open("wb") as console:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_nspawn_preexec(cgroups),
            )
    except BaseException:
        _remove_cgroups(cgroups)
        raise
    host = TestHost(name=machine, ssh_port=port, private_key=private_key, leader_pid=0, root=root,
                    console_log=console_log, _process=process, _cgroups=cgroups)  # fmt: skip
    record = {"owner_pid": os.getpid(), "owner_start": _start_time(os.getpid()), "nspawn_pid": process.pid,
              "nspawn_start": _start_time(process.pid), "leader_pid": None, "leader_start": None,
              "cgroups": [str(cgroup) for cgroup in cgroups]}  # fmt: skip
    record_path = _record_boot(machine, record)
    try:
        leader: int | None = None

        def leader_started() -> bool:
            nonlocal leader
            if process.poll() is not None:
                raise TestHostError(f"systemd-nspawn exited {process.returncode}: {shlex.join(argv)}"
                                    f"{host._console_tail()}")  # fmt: skip
            leader = _container_leader(process.pid)
            return leader is not None

        _wait_until(f"the container {machine} to start systemd", deadline, leader_started, interval=0.02)
        assert leader is not None
        host.leader_pid = leader
        host._leader_start = _start_time(leader)
        record.update(leader_pid=leader, leader_start=host._leader_start)
        _record_boot(machine, record)
        host._wait_until_ready(deadline)
        log.info("test host %s: SSH on 127.0.0.1:%d %.1f s after start", machine, port, time.monotonic() - started)
        yield host
    finally:
        try:
            host.stop()
        finally:
            record_path.unlink(missing_ok=True)
