"""The multi-host bench itself (tests/support/multihost.py), before any fault test leans on it: namespaces
reach PostgreSQL over the bridge and only there, a cut link cuts and a restored one heals, a bind
mount vanishes for one host only (even for a process already running there), nothing is left
behind (not even by a run that was killed), and one real `hb2r run` in a namespace encodes."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.clips import make_clip
from tests.support.multihost import (
    BASE,
    PREFIX,
    Host,
    Network,
    SharedStore,
    _links,
    _mount_points,
    _namespaces,
    network_run,
)
from tests.support.multihost_checks import (
    claim_problems,
    double_leases,
    lease_spans,
    ledger_problems,
    logged_claims,
    output_problems,
    temp_files,
)
from tests.support.outcomes import checksums
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def probe(store: SharedStore, *, timeout: int = 1) -> str:
    """Python code: connect to the store (connect timeout in seconds), print the address PostgreSQL
    saw or the error, and how long it took."""
    return f"""
import json, time, psycopg
began = time.monotonic()
try:
    with psycopg.connect({store.url!r}, password={store.password!r}, connect_timeout={timeout}) as connection:
        seen = str(connection.execute("SELECT host(inet_client_addr())").fetchone()[0])
except psycopg.OperationalError as error:
    seen = "error: " + str(error).splitlines()[0]
print(json.dumps({{"seen": seen, "seconds": time.monotonic() - began}}))
"""


TCP_PROBE = """
import json, socket, time
began = time.monotonic()
try:
    socket.create_connection(("{address}", {port}), timeout=1).close()
    error = None
except OSError as failure:
    error = type(failure).__name__
print(json.dumps({{"error": error, "seconds": time.monotonic() - began}}))
"""


def port_of(store: SharedStore) -> int:
    return int(store.url.rsplit(":", 1)[1].split("/")[0])


def reach(network: Network, host: str, store: SharedStore) -> dict[str, object]:
    result = network.python_in(host, probe(store))
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_each_namespace_reaches_postgresql_over_the_bridge_from_its_own_address(
    network: Network, shared_store: SharedStore
) -> None:
    first, second = network.add("nas1"), network.add("desktop")

    assert reach(network, "nas1", shared_store)["seen"] == first.address
    assert reach(network, "desktop", shared_store)["seen"] == second.address
    # a namespace of its own: the root's loopback (where the cluster also listens) is not its loopback
    local = network.python_in("nas1", TCP_PROBE.format(address="127.0.0.1", port=port_of(shared_store)))
    assert json.loads(local.stdout)["error"] == "ConnectionRefusedError", local.stdout + local.stderr


def test_a_cut_link_fails_within_a_second_for_that_host_only_and_restore_heals_it(
    network: Network, shared_store: SharedStore
) -> None:
    network.add("nas1")
    network.add("desktop")
    assert reach(network, "nas1", shared_store)["seen"] != ""

    network.cut("nas1")
    tcp = network.python_in("nas1", TCP_PROBE.format(address=network.gateway, port=port_of(shared_store)))
    other = reach(network, "desktop", shared_store)
    cut = reach(network, "nas1", shared_store)  # its failed lookups of the gateway are still fresh...
    network.restore("nas1")
    restored = reach(network, "nas1", shared_store)  # ...yet the first try after restore gets through

    assert json.loads(tcp.stdout)["error"] == "TimeoutError", tcp.stdout + tcp.stderr
    assert json.loads(tcp.stdout)["seconds"] < 1.5  # a connect in a 1 s timeout fails, no hang
    assert str(cut["seen"]).startswith("error: "), cut
    assert float(str(cut["seconds"])) < 3, cut  # libpq's connect_timeout is at least 2 s
    assert not str(other["seen"]).startswith("error"), other
    assert restored["seen"] == network.namespaces["nas1"].address, restored


WATCHER = """
import os, sys
for line in sys.stdin:
    print(sorted(os.listdir(line.strip())) if os.path.isdir(line.strip()) else "missing", flush=True)
"""


def test_an_unmount_empties_the_library_for_that_host_only_even_for_a_running_process(
    network: Network, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    (library / "Show").mkdir(parents=True)
    (library / "Show" / "E01.mkv").write_bytes(b"video")
    network.add("nas1")
    network.add("desktop")
    nas_path = network.bind(library, host="nas1", name="tv")
    desktop_path = network.bind(library, host="desktop", name="tv")
    # a process started in nas1's namespace before the unmount, as the agent would be
    watcher = subprocess.Popen(
        network.command("nas1", [sys.executable, "-c", WATCHER]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdin is not None and watcher.stdout is not None

        def listing(path: Path) -> str:
            assert watcher.stdin is not None and watcher.stdout is not None
            watcher.stdin.write(f"{path}\n")
            watcher.stdin.flush()
            return watcher.stdout.readline().strip()

        assert listing(nas_path) == "['Show']"
        network.unbind(nas_path)

        assert listing(nas_path) == "[]"  # the mount point is there, empty: like a dropped share
        desktop = network.run_in("desktop", ["ls", str(desktop_path / "Show")])
        assert desktop.stdout.split() == ["E01.mkv"]
        assert (library / "Show" / "E01.mkv").read_bytes() == b"video"  # the library itself untouched
    finally:
        watcher.kill()
        watcher.wait()


def leftovers(run: str) -> dict[str, list[str]]:
    folder = BASE / run
    return {
        "namespaces": [name for name in _namespaces() if name.startswith(f"{run}-")],
        "links": [name for name in _links() if name in (f"{run}br",) or name.startswith(f"{run}v")],
        "mounts": [str(point) for point in _mount_points() if point == folder or folder in point.parents],
        "files": [str(path) for path in (folder, BASE / f"{run}.lock") if path.exists()],
    }


def test_teardown_removes_namespaces_links_mounts_and_processes(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    network = Network.create()
    run = network.run
    try:
        network.add("nas1")
        network.add("desktop")
        network.bind(tmp_path / "library", host="nas1", name="tv")
        sleeper = subprocess.Popen(network.command("desktop", ["sleep", "300"]))
        before = leftovers(run)
    finally:
        network.close()

    assert before["namespaces"] and before["links"] and before["mounts"]  # there was something to remove
    assert leftovers(run) == {"namespaces": [], "links": [], "mounts": [], "files": []}
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert (tmp_path / "library").is_dir()


KILLED_RUN = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from tests.support.multihost import Network
network = Network.create()
network.add("nas1")
network.bind(__import__("pathlib").Path(sys.argv[1]), host="nas1", name="tv")
print(network.run, flush=True)
time.sleep(300)
"""


def test_a_run_killed_before_its_teardown_is_cleaned_by_the_next_one(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "keep.mkv").write_bytes(b"video")
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path / "library")], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None
    stale = killed.stdout.readline().strip()
    assert stale.startswith(PREFIX), stale
    killed.kill()
    killed.wait()
    assert leftovers(stale)["namespaces"]  # the killed run left its namespace behind

    with network_run() as network:  # it may take the freed number again: look at the old run's parts
        assert f"{stale}-nas1" not in _namespaces()
        assert f"{stale}v1" not in _links()
        assert BASE / stale / "nas1" / "tv" not in _mount_points()
        assert network.add("nas1").netns == f"{network.run}-nas1"  # the new run works on
    assert (tmp_path / "library" / "keep.mkv").read_bytes() == b"video"  # cleaning never deletes through a mount


def test_a_live_run_of_another_session_is_left_alone(tmp_path: Path) -> None:
    with network_run() as first:
        first.add("nas1")
        with network_run() as second:
            assert second.number != first.number
            assert leftovers(first.run)["namespaces"] == [f"{first.run}-nas1"]


def test_one_host_in_a_namespace_encodes_a_clip_and_sees_its_mount_go_and_come_back(
    hosts: Callable[..., Host], shared_store: SharedStore, tmp_path: Path
) -> None:
    library, archive = tmp_path / "library", tmp_path / "archive"
    make_clip(library / "Show" / "E01.mkv", seconds=1)
    sources = checksums(library)
    host = hosts("nas1").start()

    health = host.wait_healthy()
    wait_for(lambda: (archive / "TV" / "Show" / "E01.mkv").exists(), what="the output published", deadline=60)
    wait_for(
        lambda: shared_store.rows("SELECT state FROM jobs") == [("done",)],
        what="its job done in PostgreSQL",
        deadline=30,
    )

    assert health["status"] == "healthy"
    host.unmount()  # the running agent's library mount goes missing
    host.wait_healthy(accept=("degraded",), deadline=30)
    host.remount()
    host.wait_healthy(deadline=30)
    assert host.stop() == 0
    paused = host.events("library paused")
    assert [event["library"] for event in paused] == ["tv"]
    assert "is the disk mounted?" in paused[0]["reason"]
    assert [event["library"] for event in host.events("library resumed")] == ["tv"]
    assert host.events("agent started")[0]["store"].startswith(f"PostgreSQL store {host.network.gateway}:")
    assert output_problems(library=library, archive=archive) == []
    assert temp_files(archive) == []
    ledger = shared_store.rows("SELECT library, rel_path FROM ledger")
    assert ledger_problems(ledger, library_name="tv", sources=["Show/E01.mkv"]) == []
    assert checksums(library) == sources
    assert shared_store.password not in host.log_path.read_text()
    # the store's audit saw the job's life on the database's clock (no leases on one host yet)
    changes = [change for change in shared_store.audit() if change.table == "jobs"]
    assert [change.row["state"] for change in changes][-1] == "done"
    assert "running" in [change.row["state"] for change in changes]
    assert all(earlier.at <= later.at for earlier, later in itertools.pairwise(changes))
    spans = lease_spans(changes)
    assert double_leases(spans) == []
    assert claim_problems(logged_claims(host.events()), spans) == []


def test_a_crashed_host_takes_its_encode_with_it_and_can_be_started_again(
    hosts: Callable[..., Host], tmp_path: Path
) -> None:
    make_clip(tmp_path / "library" / "long.mkv", seconds=20, size="640x360")
    host = hosts("nas1").start()
    partial = tmp_path / "archive" / ".hb2r-partial"
    wait_for(lambda: partial.is_dir() and any(partial.iterdir()), what="an encode under way", deadline=60)
    assert len(host.processes()) >= 2  # the agent and its HandBrakeCLI

    host.crash()

    assert not host.running()
    assert host.processes() == []  # no orphaned HandBrakeCLI writing on
    host.start().wait_healthy()


def test_a_frozen_host_answers_nothing_until_it_is_thawed(hosts: Callable[..., Host]) -> None:
    host = hosts("nas1").start()
    host.wait_healthy()

    frozen = host.signal_all(signal.SIGSTOP)

    assert host.process is not None and host.process.pid in frozen
    assert host.health() == (0, None)  # curl's 1 s timeout: nobody answers
    host.signal_all(signal.SIGCONT)
    assert host.wait_healthy(deadline=10)["status"] == "healthy"
