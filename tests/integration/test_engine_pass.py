"""One reconcile pass against real files and a real database (no encoding: that is the dispatcher's)."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent import engine, logs, plan_from_store
from agent.config import load_config
from agent.domain import LedgerEntry
from agent.engine import AgentState, reconcile
from agent.store import jobs, ledger
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore
from tests.support.configs import write_small_library


def test_a_big_library_is_queued_a_budget_at_a_time_and_every_file_gets_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "ENQUEUE_BUDGET", 2)  # fingerprints read from disk per pass
    config = load_config(write_small_library(tmp_path, files=5)).config
    logs.configure(stream=io.StringIO(), json=True)

    async def passes() -> list[int]:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        counts = []
        for _ in range(4):
            await reconcile(state, log=logs.get_logger("test"))
            counts.append(len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)))
        connection.close()
        return counts

    assert asyncio.run(passes()) == [2, 4, 5, 5]


def test_jobs_the_plan_no_longer_wants_are_cancelled_but_not_those_of_a_paused_library(tmp_path: Path) -> None:
    config_path = write_small_library(tmp_path, files=2)
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        await reconcile(state, log=logs.get_logger("test"))
        assert len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)) == 2

        (tmp_path / "tv").rename(tmp_path / "tv-unmounted")
        await reconcile(state, log=logs.get_logger("test"))
        assert "tv" in state.paused_libraries
        assert len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)) == 2  # kept while paused

        (tmp_path / "tv-unmounted").rename(tmp_path / "tv")
        (tmp_path / "tv" / "E01.mkv").unlink()  # deleted for real: its job goes
        await reconcile(state, log=logs.get_logger("test"))
        queued = [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.QUEUED)]
        cancelled = [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.CANCELLED)]
        assert (queued, cancelled) == (["E00.mkv"], ["E01.mkv"])
        connection.close()

    asyncio.run(scenario())


def test_a_file_published_while_the_pass_scans_is_not_queued_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_small_library(tmp_path, files=1)).config
    logs.configure(stream=io.StringIO(), json=True)
    real_queue = engine._queue

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        await reconcile(state, log=logs.get_logger("test"))
        (job,) = jobs.list_jobs(connection, state=jobs.JobState.QUEUED)
        jobs.mark_running(connection, job.id, now=datetime.now(UTC))

        def publish_meanwhile(*arguments: object, **options: object) -> object:
            # The interleaving that re-encoded a file: the dispatcher publishes the running job
            # (ledger row, job done, output in place) after the pass planned from the ledger and
            # before it queues. Real functions, only the timing is forced (and a connection of
            # its own, as the dispatcher's).
            writer = open_database(config.paths.state_dir)
            source = tmp_path / "tv" / job.rel_path
            entry = LedgerEntry(
                "tv", job.rel_path, job.fingerprint, source.stat().st_size, source.stat().st_mtime_ns, "p1",
                job.output_path,
            )  # fmt: skip
            ledger.record(writer, entry, encoded_at=datetime.now(UTC).isoformat(), output_size=3)
            jobs.mark_done(writer, job.id, now=datetime.now(UTC))
            writer.close()
            (tmp_path / "archive" / job.output_path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "archive" / job.output_path).write_bytes(b"out")
            return real_queue(*arguments, **options)  # type: ignore[arg-type]

        monkeypatch.setattr(engine, "_queue", publish_meanwhile)
        await reconcile(state, log=logs.get_logger("test"))
        assert [found.state for found in jobs.list_jobs(connection)] == [jobs.JobState.DONE]

        monkeypatch.setattr(engine, "_queue", real_queue)
        (tmp_path / "archive" / job.output_path).unlink()  # the output goes missing: encoded again
        await reconcile(state, log=logs.get_logger("test"))
        (again,) = jobs.list_jobs(connection)
        assert (again.state, again.reason) == (jobs.JobState.QUEUED, "output missing")
        connection.close()

    asyncio.run(scenario())


def test_a_pass_takes_the_folders_inotify_marked_and_says_when_a_waiting_file_becomes_stable(tmp_path: Path) -> None:
    config = load_config(write_small_library(tmp_path, files=1)).config
    config = config.model_copy(
        update={"libraries": [config.libraries[0].model_copy(update={"stable_after": timedelta(seconds=30)})]}
    )
    logs.configure(stream=io.StringIO(), json=True)

    async def one_pass() -> AgentState:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        state.dirty_folders["tv"] = {"", "Show"}
        await reconcile(state, log=logs.get_logger("test"))
        connection.close()
        return state

    before = datetime.now(UTC)
    state = asyncio.run(one_pass())
    assert state.dirty_folders == {}  # this pass walked them (a full walk takes them all)
    assert state.last_pass is not None and state.last_pass.waiting == {"tv": 1}
    stable_at = state.last_pass.next_stable_at
    assert stable_at is not None
    # the file was written just before the pass: stable 30 s after that
    assert before + timedelta(seconds=28) < stable_at <= datetime.now(UTC) + timedelta(seconds=30)


class Clocks:
    """The pass's clocks (wall and monotonic), an hour ahead of the files' and moved on by the test:
    the files look settled without waiting."""

    def __init__(self) -> None:
        self.ahead = 3600.0

    def time_ns(self) -> int:
        return time.time_ns() + int(self.ahead * 1e9)

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead


def test_passes_list_only_what_changed_and_a_full_pass_every_full_interval_reports_what_they_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_small_library(tmp_path, files=3)
    (tmp_path / "tv" / "Show").mkdir()
    (tmp_path / "tv" / "Show" / "S01.mkv").write_bytes(b"show" * 100)
    config_path.write_text(config_path.read_text() + "scan: {interval: 1m, full_interval: 1h}\n")
    config = load_config(config_path).config
    output = io.StringIO()
    logs.configure(stream=output, json=True)
    clocks = Clocks()
    monkeypatch.setattr(engine, "time", clocks)

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        store = SqliteStore(connection)
        state = AgentState(config=config, store=store, preset_hashes={"tv": "p1"})
        log = logs.get_logger("test")

        await reconcile(state, log=log)  # the first pass after start is full
        first = state.full_passes["tv"]
        listed = {rel_path: folder.listed_at_ns for rel_path, folder in store.load_folders("tv").items()}
        assert sorted(listed) == ["", "Show"]

        clocks.ahead += 60
        await reconcile(state, log=log)  # nothing changed: nothing listed
        assert {rel: folder.listed_at_ns for rel, folder in store.load_folders("tv").items()} == listed
        assert state.full_passes["tv"] == first

        with (tmp_path / "tv" / "E01.mkv").open("r+b") as handle:  # rewritten in place: no folder's mtime moves
            handle.write(b"X")
        state.dirty_folders = {"tv": {"Show"}}  # inotify saw something in Show
        clocks.ahead += 60
        await reconcile(state, log=log)
        assert state.dirty_folders == {}  # taken by the pass
        now_listed = {rel: folder.listed_at_ns for rel, folder in store.load_folders("tv").items()}
        assert now_listed[""] == listed[""] and now_listed["Show"] > listed["Show"]
        assert "found changes the scan memory had missed" not in output.getvalue()

        clocks.ahead += 3600  # scan.full_interval later: a full pass, which finds the rewritten file
        await reconcile(state, log=log)
        assert state.full_passes["tv"].at > first.at
        [missed] = [json.loads(line) for line in output.getvalue().splitlines() if "had missed" in line]
        assert (missed["library"], missed["count"], missed["paths"]) == ("tv", 1, ["E01.mkv"])
        connection.close()

    asyncio.run(scenario())


def test_a_pass_holds_a_few_folders_at_a_time_never_the_whole_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory that does not grow with the library: a pass plans from the store batch by batch,
    so it never loads the ledger and scan memory whole, nor every kept folder's files at once.
    (The real store, with its whole-table reads made to fail or to be watched.)"""
    (tmp_path / "tv").mkdir()
    (tmp_path / "archive").mkdir()
    for folder in range(engine.KEPT_PAGE + 20):
        (tmp_path / "tv" / f"Show {folder:03d}").mkdir()
        (tmp_path / "tv" / f"Show {folder:03d}" / "E01.mkv").write_bytes(b"episode" * 100)
    config_path = write_small_library(tmp_path, files=0, extra="scan: {full_interval: 1h}\n")
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)
    asked: list[int] = []
    real_folder_files = SqliteStore.load_folder_files

    def whole_ledger(self: SqliteStore) -> object:
        raise AssertionError("a pass read the whole ledger and scan memory")

    def folder_files(self: SqliteStore, library: str, folders: list[str]) -> object:
        asked.append(len(folders))
        return real_folder_files(self, library, folders)

    async def passes() -> tuple[int, int]:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        await reconcile(state, log=logs.get_logger("test"))  # full: every folder listed
        await reconcile(state, log=logs.get_logger("test"))  # incremental: every folder kept
        queued = len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED))
        connection.close()
        assert state.last_pass is not None
        return queued, state.last_pass.counts.get("queued", 0)

    monkeypatch.setattr(SqliteStore, "load_ledger", whole_ledger)
    monkeypatch.setattr(SqliteStore, "load_folder_files", folder_files)
    assert asyncio.run(passes()) == (engine.KEPT_PAGE + 20, engine.KEPT_PAGE + 20)
    assert asked and max(asked) <= engine.KEPT_PAGE  # the kept folders' files, a page at a time


def test_a_pass_plans_only_the_folders_that_changed_or_have_work_and_counts_the_rest_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cost follows change: over an unchanged, encoded library a pass plans no folder, and after a
    change only the folders concerned, while its summary stays what a pass planning every folder
    (a fresh agent's) says. (The real store; which folders a pass reads is watched.)"""
    from agent.identity import output_path
    from agent.scan import fingerprint

    source, archive = tmp_path / "tv", tmp_path / "archive"
    config_path = write_small_library(tmp_path, files=0, extra="scan: {full_interval: 1h}\n")
    for folder in range(30):
        (source / f"Show {folder:03d}").mkdir(parents=True)
        (source / f"Show {folder:03d}" / "E01.mkv").write_bytes(f"episode {folder}".encode() * 100)
    (source / "Empty").mkdir()
    (source / "Empty" / "E01.mkv").write_bytes(b"")  # skipped, in every pass's counts
    config = load_config(config_path).config
    [tv] = config.libraries
    connection = open_database(config.paths.state_dir)
    for folder in range(30):
        rel_path = f"Show {folder:03d}/E01.mkv"
        info = (source / rel_path).stat()
        output = output_path(tv, config.preset_for(tv), rel_path)
        entry = LedgerEntry("tv", rel_path, fingerprint(source / rel_path, size=info.st_size), info.st_size,
                            info.st_mtime_ns, "p1", output)  # fmt: skip
        ledger.record(connection, entry, encoded_at=datetime.now(UTC).isoformat())
        (archive / output).parent.mkdir(parents=True, exist_ok=True)
        (archive / output).write_bytes(b"encoded")
    logs.configure(stream=io.StringIO(), json=True)
    planned: list[str] = []
    real_ledger_in_folders = SqliteStore.ledger_in_folders

    def ledger_in_folders(self: SqliteStore, library: str, folders: list[str]) -> object:
        planned.extend(folders)
        return real_ledger_in_folders(self, library, folders)

    monkeypatch.setattr(SqliteStore, "ledger_in_folders", ledger_in_folders)
    vanished_reads: list[str] = []
    real_vanished_rows = SqliteStore.vanished_rows

    def vanished_rows(self: SqliteStore, library: str) -> object:
        vanished_reads.append(library)
        return real_vanished_rows(self, library)

    monkeypatch.setattr(SqliteStore, "vanished_rows", vanished_rows)
    # The passes' clock an hour ahead of the files' (as in test_incremental_scan.py): the tree just
    # made is settled, not racy, so a folder is listed only when it changes.
    ahead = SimpleNamespace(time_ns=lambda: time.time_ns() + 3600 * 10**9, monotonic=time.monotonic)
    monkeypatch.setattr(engine, "time", ahead)
    state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})

    def a_pass() -> tuple[list[str], dict[str, int]]:
        planned.clear()
        asyncio.run(reconcile(state, log=logs.get_logger("test")))
        assert state.last_pass is not None
        return sorted(planned), state.last_pass.counts

    def a_fresh_agents_counts() -> dict[str, int]:
        fresh = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        asyncio.run(reconcile(fresh, log=logs.get_logger("test")))
        assert fresh.last_pass is not None
        return fresh.last_pass.counts

    first_planned, first_counts = a_pass()
    assert len(first_planned) == 31 and first_counts == {"skip": 1}
    assert a_pass() == ([], {"skip": 1})  # nothing changed: nothing planned, the same counts

    (source / "Show 003" / "E01.mkv").unlink()  # its output is kept: drift
    assert a_pass() == ([], {"drift": 1, "skip": 1})  # Show 003 holds no file: its vanished row is the library's
    vanished_reads.clear()
    assert a_pass() == ([], {"drift": 1, "skip": 1})
    assert vanished_reads == []  # nothing moved: the vanished rows are not read again
    (source / "Show 004" / "E02.mkv").write_bytes(b"a new episode")
    changed = a_pass()
    assert changed == (["Show 004"], {"queued": 1, "drift": 1, "skip": 1})
    assert a_pass() == changed  # work left in Show 004 (its job): planned again, and nothing else
    assert changed[1] == a_fresh_agents_counts()

    (archive / "TV" / "Show 010" / "E01.mkv").unlink()  # an output deleted: its folder in the archive changed
    shutil.rmtree(archive / "TV" / "Show 011")  # an output folder deleted
    planned_now, counts = a_pass()
    assert planned_now == ["Show 004", "Show 010", "Show 011"]
    assert counts == {"queued": 3, "drift": 1, "skip": 1} == a_fresh_agents_counts()
    connection.close()


def test_the_fingerprints_a_pass_decides_with_are_read_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moved folder of episodes means reading a fingerprint of each: the API and the dispatcher
    must not wait for the disk meanwhile. (Real reads; the thread they run in is watched.)"""
    from agent import observe
    from agent.identity import output_path
    from agent.scan import fingerprint

    config = load_config(write_small_library(tmp_path, files=1)).config
    [tv] = config.libraries
    source = tmp_path / "tv"
    connection = open_database(config.paths.state_dir)
    info = (source / "E00.mkv").stat()
    output = output_path(tv, config.preset_for(tv), "E00.mkv")
    entry = LedgerEntry("tv", "E00.mkv", fingerprint(source / "E00.mkv", size=info.st_size), info.st_size,
                        info.st_mtime_ns, "p1", output)  # fmt: skip
    ledger.record(connection, entry, encoded_at=datetime.now(UTC).isoformat())
    (tmp_path / "archive" / output).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "archive" / output).write_bytes(b"encoded")
    (source / "Season 1").mkdir()
    (source / "E00.mkv").rename(source / "Season 1" / "E00.mkv")  # moved: a rename, once its fingerprint is read
    logs.configure(stream=io.StringIO(), json=True)
    threads: list[bool] = []
    real_fingerprint = observe.fingerprint

    def watched(path: Path, *, size: int) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return real_fingerprint(path, size=size)

    monkeypatch.setattr(observe, "fingerprint", watched)
    state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
    asyncio.run(reconcile(state, log=logs.get_logger("test")))

    assert [row[0] for row in connection.execute("SELECT rel_path FROM ledger").fetchall()] == ["Season 1/E00.mkv"]
    assert threads == [False]  # read once, in a thread
    connection.close()


def test_a_pass_over_an_unchanged_library_gives_the_loop_a_turn_between_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease renewal, the API and the dispatcher run on the pass's loop: a pass that plans a
    million unchanged files (no action to act on) without letting them run lost its planner lease
    every time, and never finished."""
    for folder in ("tv", "archive"):
        (tmp_path / folder).mkdir()
    config_path = write_small_library(tmp_path, files=0)
    config = load_config(config_path).config
    connection = open_database(config.paths.state_dir)
    for show in range(12):
        for episode in range(2):
            rel_path = f"Show {show:02d}/E{episode}.mkv"
            source = tmp_path / "tv" / rel_path
            source.parent.mkdir(exist_ok=True)
            source.write_bytes(f"{rel_path}\n".encode())
            output = tmp_path / "archive" / "TV" / rel_path
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(b"encoded")
            info = source.stat()
            entry = LedgerEntry("tv", rel_path, "f", info.st_size, info.st_mtime_ns, "p1", f"TV/{rel_path}")
            ledger.record(connection, entry, encoded_at="2024-05-01T12:00:00+00:00")
    monkeypatch.setattr(plan_from_store, "BATCH_FILES", 2)  # a batch a folder
    logs.configure(stream=io.StringIO(), json=True)

    async def scenario() -> list[int]:
        store = SqliteStore(connection)
        state = AgentState(config=config, store=store, preset_hashes={"tv": "p1"})
        turns = 0
        seen_at_turn: list[int] = []
        read_seen = store.seen_in_folders

        def seen_in_folders(library: str, folders: list[str]) -> object:
            seen_at_turn.append(turns)  # the loop's turns so far, as each batch is read
            return read_seen(library, folders)

        store.seen_in_folders = seen_in_folders  # type: ignore[method-assign,assignment]
        stop = asyncio.Event()

        async def count_turns() -> None:
            nonlocal turns
            while not stop.is_set():
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count_turns())
        summary = await reconcile(state, log=logs.get_logger("test"))
        stop.set()
        await counter
        assert summary.counts.get("transcode", 0) == 0  # in sync: no action, nothing to act on
        return seen_at_turn

    seen_at_turn = asyncio.run(scenario())
    connection.close()

    assert len(seen_at_turn) == 12
    assert all(later > earlier for earlier, later in itertools.pairwise(seen_at_turn))


def test_an_idle_pass_reads_no_remembered_folder_and_the_agent_remembers_what_the_store_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle pass at a million files read its 20,000 remembered folders (the library's and the
    archive's) from the store every pass: a third of its time. The agent keeps them as its last
    recording left them; they must stay exactly what the store holds through every kind of change."""
    config_path = write_small_library(tmp_path, files=2)
    (tmp_path / "tv" / "Show").mkdir()
    (tmp_path / "tv" / "Show" / "S01.mkv").write_bytes(b"show" * 100)
    (tmp_path / "archive" / "TV" / "Show").mkdir(parents=True)
    (tmp_path / "archive" / "TV" / "Show" / "S01.mkv").write_bytes(b"encoded")
    config_path.write_text(config_path.read_text() + "scan: {interval: 1m, full_interval: 1h}\n")
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)
    clocks = Clocks()
    monkeypatch.setattr(engine, "time", clocks)
    connection = open_database(config.paths.state_dir)
    store = SqliteStore(connection)
    reads: list[str] = []
    load_folders, load_archive_folders = store.load_folders, store.load_archive_folders

    def counted_folders(library: str) -> object:
        reads.append(library)
        return load_folders(library)

    def counted_archive_folders() -> object:
        reads.append(engine.ARCHIVE_WALK)
        return load_archive_folders()

    store.load_folders = counted_folders  # type: ignore[method-assign,assignment]
    store.load_archive_folders = counted_archive_folders  # type: ignore[method-assign,assignment]
    state = AgentState(config=config, store=store, preset_hashes={"tv": "p1"})
    changes = [
        lambda: None,
        lambda: (tmp_path / "tv" / "Show" / "S02.mkv").write_bytes(b"new" * 100),
        lambda: (tmp_path / "tv" / "Extras").mkdir(),
        lambda: shutil.rmtree(tmp_path / "tv" / "Show"),
        lambda: (tmp_path / "archive" / "TV" / "Old").mkdir(),
        lambda: shutil.rmtree(tmp_path / "archive" / "TV" / "Show"),
        lambda: (tmp_path / "tv" / "Extras").rename(tmp_path / "tv" / "Bonus"),
        lambda: None,
    ]

    async def scenario() -> list[int]:
        log = logs.get_logger("test")
        read_per_pass = []
        await reconcile(state, log=log)  # the first pass after start: full, the archive's too
        clocks.ahead += 60
        await reconcile(state, log=log)  # reads what the full pass recorded, once
        for change in changes:
            change()
            clocks.ahead += 60
            reads.clear()
            await reconcile(state, log=log)
            read_per_pass.append(len(reads))
            assert state.remembered_folders["tv"] == load_folders("tv")
            assert state.remembered_folders[engine.ARCHIVE_WALK] == load_archive_folders()
        assert sorted(load_folders("tv")) == ["", "Bonus"]
        assert sorted(load_archive_folders()) == ["TV", "TV/Old"]
        return read_per_pass

    assert asyncio.run(scenario()) == [0] * len(changes)
    connection.close()


def test_a_pass_over_files_already_queued_writes_no_job_and_reads_no_row_per_file(tmp_path: Path) -> None:
    """Files that stay queued are planned and ruled again every pass; their jobs are read a
    stretch at a time, and nothing is written or looked up for each file (bench/rules.py, part pass)."""
    config = load_config(write_small_library(tmp_path, files=40)).config
    logs.configure(stream=io.StringIO(), json=True)

    async def statements_of_the_second_pass() -> list[str]:
        connection = open_database(config.paths.state_dir)
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
        await reconcile(state, log=logs.get_logger("test"))  # probes each file (ffprobe cannot read it) and queues it
        queued = jobs.list_jobs(connection, state=jobs.JobState.QUEUED)
        assert len(queued) == 40
        run: list[str] = []
        connection.connection.set_trace_callback(run.append)
        await reconcile(state, log=logs.get_logger("test"))
        connection.connection.set_trace_callback(None)
        assert jobs.list_jobs(connection, state=jobs.JobState.QUEUED) == queued  # the same jobs, untouched
        connection.close()
        return run

    run = asyncio.run(statements_of_the_second_pass())

    assert [statement for statement in run if "INSERT INTO jobs" in statement] == []
    assert len(run) < 40, run  # none per file
