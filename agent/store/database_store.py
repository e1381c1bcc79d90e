"""`DatabaseStore`: the `Store` protocol carried out by the store modules on any `Database`.

The store modules' SQL is written to run on SQLite and PostgreSQL alike (`agent.store.sql`),
so one class serves both; `SqliteStore` (`agent.store.sqlite`) adds what only a SQLite file
can do. Each method is the module function of the same (or the named) purpose.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from agent.domain import (
    FolderVisit,
    Ledger,
    LedgerEntry,
    RememberedFolder,
    SeenFile,
    SourceFile,
    UserChange,
    UserRecord,
)
from agent.facts import MediaFacts
from agent.saving_estimate import FinishedEncode
from agent.store import (
    agent_status,
    archive_memory,
    batch_facts,
    decisions,
    encode_history,
    failures,
    history,
    holds,
    hosts,
    jobs,
    leader,
    leases,
    ledger,
    media_facts,
    planner_ledger,
    savings,
    scans,
    tallies,
    tokens,
    users,
)
from agent.store.decisions import LibraryDecisions
from agent.store.holds import Hold
from agent.store.hosts import HostReport, HostRow
from agent.store.jobs import CancelledBy, Job, JobState
from agent.store.leader import FencedDatabase, Leadership
from agent.store.leases import Claim, Heartbeat, Lease
from agent.store.ledger import LibraryBytes
from agent.store.media_facts import StoredFacts
from agent.store.order import QueueOrder
from agent.store.savings import Saving
from agent.store.sql import Database, StoreError

if TYPE_CHECKING:
    from agent.config.models import Retry


class DatabaseStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    # --- the store itself
    def transaction(self) -> AbstractContextManager[None]:
        return self.database.transaction()

    def close(self) -> None:
        self.database.close()

    def backup_to(self, target: Path) -> None:
        raise StoreError(f"a {self.database.dialect} store cannot be copied into a file")

    # --- jobs
    def enqueue(
        self,
        *,
        library: str,
        rel_path: str,
        fingerprint: str,
        preset_hash: str,
        output_path: str,
        reason: str,
        now: datetime,
        saving: int = 0,
    ) -> Job | None:
        return jobs.enqueue(
            self.database,
            library=library,
            rel_path=rel_path,
            fingerprint=fingerprint,
            preset_hash=preset_hash,
            output_path=output_path,
            reason=reason,
            now=now,
            saving=saving,
        )

    def hold_identity(self, *, library: str, rel_path: str, fingerprint: str, preset_hash: str) -> None:
        jobs.hold_identity(
            self.database, library=library, rel_path=rel_path, fingerprint=fingerprint, preset_hash=preset_hash
        )

    def next_runnable(
        self,
        *,
        now: datetime,
        library_order: Sequence[str],
        exclude_libraries: Collection[str] = (),
        order: QueueOrder | None = None,
    ) -> Job | None:
        return jobs.next_runnable(
            self.database, now=now, library_order=library_order, exclude_libraries=exclude_libraries, order=order
        )

    def move_to_front(self, job_id: int, *, now: datetime) -> Job:
        return jobs.move_to_front(self.database, job_id, now=now)

    def record_facts(self, fingerprint: str, *, facts: MediaFacts | None, error: str | None, now: datetime) -> None:
        media_facts.record(self.database, fingerprint, facts=facts, error=error, now=now)

    def facts_for(self, fingerprints: Collection[str]) -> dict[str, StoredFacts]:
        return media_facts.read(self.database, fingerprints)

    def finished_encodes(self, library: str) -> list[FinishedEncode]:
        return encode_history.finished_encodes(self.database, library)

    def forget_facts(self, fingerprints: Collection[str]) -> int:
        return media_facts.forget(self.database, fingerprints)

    def mark_running(self, job_id: int, *, now: datetime) -> Job:
        return jobs.mark_running(self.database, job_id, now=now)

    def record_progress(self, job_id: int, *, progress: float, now: datetime) -> None:
        jobs.record_progress(self.database, job_id, progress=progress, now=now)

    def mark_done(self, job_id: int, *, now: datetime) -> Job:
        return jobs.mark_done(self.database, job_id, now=now)

    def mark_failed(
        self,
        job_id: int,
        *,
        error: str,
        stderr_tail: Sequence[str],
        retry: Retry,
        now: datetime,
        token: int | None = None,
    ) -> Job:
        return jobs.mark_failed(
            self.database, job_id, error=error, stderr_tail=stderr_tail, retry=retry, now=now, token=token
        )

    def mark_failed_temporarily(
        self,
        job_id: int,
        *,
        error: str,
        stderr_tail: Sequence[str],
        retry: Retry,
        now: datetime,
        token: int | None = None,
    ) -> Job:
        return failures.mark_failed_temporarily(
            self.database, job_id, error=error, stderr_tail=stderr_tail, retry=retry, now=now, token=token
        )

    def mark_failed_permanently(
        self, job_id: int, *, error: str, stderr_tail: Sequence[str], now: datetime, token: int | None = None
    ) -> Job:
        return failures.mark_failed_permanently(
            self.database, job_id, error=error, stderr_tail=stderr_tail, now=now, token=token
        )

    def requeue_running(self, *, now: datetime, host: str | None = None) -> list[Job]:
        return jobs.requeue_running(self.database, now=now, host=host)

    def cancel(self, job_id: int, *, now: datetime, by: CancelledBy = CancelledBy.ENGINE) -> Job:
        return jobs.cancel(self.database, job_id, now=now, by=by)

    def operator_cancelled(self) -> list[Job]:
        return jobs.operator_cancelled(self.database)

    def waiting(self) -> list[tuple[int, str, str]]:
        return jobs.waiting(self.database)

    def retry(self, job_id: int, *, now: datetime) -> Job:
        return jobs.retry(self.database, job_id, now=now)

    def retry_dead(self, *, now: datetime) -> list[Job]:
        return jobs.retry_dead(self.database, now=now)

    def list_jobs(self, *, state: JobState | None = None, library: str | None = None) -> list[Job]:
        return jobs.list_jobs(self.database, state=state, library=library)

    def get_job(self, job_id: int) -> Job | None:
        return jobs.get(self.database, job_id)

    def counts(self) -> dict[JobState, int]:
        return jobs.counts(self.database)

    def counts_by_library(self) -> dict[str, dict[str, int]]:
        return jobs.counts_by_library(self.database)

    def page(
        self, *, state: JobState | None = None, library: str | None = None, before_id: int | None = None, limit: int
    ) -> list[Job]:
        return jobs.page(self.database, state=state, library=library, before_id=before_id, limit=limit)

    def last_change(self) -> int:
        return jobs.last_change(self.database)

    def changed_after(self, change: int, *, limit: int = 500) -> list[tuple[int, Job]]:
        return jobs.changed_after(self.database, change, limit=limit)

    def unfinished(self) -> list[Job]:
        return jobs.unfinished(self.database)

    def unfinished_of_files(self, library: str, rel_paths: Sequence[str]) -> list[Job]:
        return jobs.unfinished_of_files(self.database, library, rel_paths)

    # --- the ledger
    def load_ledger(self) -> Ledger:
        return planner_ledger.load_ledger(self.database)

    def record_output(
        self, entry: LedgerEntry, *, encoded_at: str, output_size: int | None = None, adopted: bool = False
    ) -> None:
        ledger.record(self.database, entry, encoded_at=encoded_at, output_size=output_size, adopted=adopted)

    def output_size(self, *, library: str, rel_path: str) -> int | None:
        return ledger.output_size(self.database, library=library, rel_path=rel_path)

    def unsized_outputs(self) -> list[str]:
        return ledger.unsized_outputs(self.database)

    def set_output_size(self, output_path: str, size: int) -> None:
        ledger.set_output_size(self.database, output_path, size)

    def bytes_by_library(self) -> dict[str, LibraryBytes]:
        return ledger.bytes_by_library(self.database)

    def note_larger_output(self, *, output_path: str, then: str) -> None:
        decisions.note_larger_output(self.database, output_path=output_path, then=then)

    def decisions_by_library(self) -> dict[str, LibraryDecisions]:
        return decisions.by_library(self.database)

    def saved_since(self, since: datetime) -> Saving:
        return savings.saved_since(self.database, since)

    def forget(self, *, library: str, rel_path: str) -> None:
        ledger.forget(self.database, library=library, rel_path=rel_path)

    def forget_output(self, output_path: str) -> None:
        ledger.forget_output(self.database, output_path)

    def records(self, *, library: str, rel_path: str, fingerprint: str, preset_hash: str) -> bool:
        return ledger.records(
            self.database, library=library, rel_path=rel_path, fingerprint=fingerprint, preset_hash=preset_hash
        )

    def output_holder(self, output_path: str) -> str | None:
        return ledger.output_holder(self.database, output_path)

    def carry_over(self, *, output_path: str, library: str, rel_path: str, size: int, mtime_ns: int) -> None:
        ledger.carry_over(
            self.database, output_path=output_path, library=library, rel_path=rel_path, size=size, mtime_ns=mtime_ns
        )

    def holds_output(self, output_path: str) -> bool:
        return ledger.holds_output(self.database, output_path)

    def made_output(self, output_path: str) -> bool:
        return ledger.made_output(self.database, output_path)

    def adopted(self, *, library: str, rel_path: str) -> bool:
        return ledger.adopted(self.database, library=library, rel_path=rel_path)

    def awaited_by_a_job(self, *, library: str, rel_path: str, fingerprint: str, output_path: str) -> bool:
        return ledger.awaited_by_a_job(
            self.database, library=library, rel_path=rel_path, fingerprint=fingerprint, output_path=output_path
        )

    # --- scan memory
    def load_seen(self) -> dict[tuple[str, str], SeenFile]:
        return scans.load_seen(self.database)

    def load_file_counts(self) -> dict[str, int]:
        return scans.load_file_counts(self.database)

    def record_scan(
        self,
        *,
        library: str,
        files: Iterable[SourceFile],
        previous: Mapping[tuple[str, str], SeenFile],
        now_ns: int,
        scanned_at: str,
        folders: Iterable[FolderVisit] | None = None,
        full_seconds: float | None = None,
    ) -> None:
        scans.record_scan(
            self.database,
            library=library,
            files=files,
            previous=previous,
            now_ns=now_ns,
            scanned_at=scanned_at,
            folders=folders,
            full_seconds=full_seconds,
        )

    def load_full_passes(self) -> dict[str, scans.FullPass]:
        return scans.load_full_passes(self.database)

    def record_walk(
        self,
        *,
        library: str,
        listed: Mapping[str, Sequence[SourceFile]],
        folders: Iterable[FolderVisit],
        fingerprints: Mapping[str, tuple[int, int, str]] | None = None,
        now_ns: int,
        scanned_at: str,
        full_seconds: float | None = None,
        before_walk: Mapping[str, RememberedFolder] | None = None,
    ) -> dict[str, RememberedFolder]:
        return scans.record_walk(
            self.database,
            library=library,
            listed=listed,
            folders=folders,
            fingerprints=fingerprints,
            now_ns=now_ns,
            scanned_at=scanned_at,
            full_seconds=full_seconds,
            before_walk=before_walk,
        )

    def load_folders(self, library: str) -> dict[str, RememberedFolder]:
        return scans.load_folders(self.database, library)

    def load_folder_files(self, library: str, folders: Sequence[str]) -> dict[str, list[SourceFile]]:
        return scans.load_folder_files(self.database, library, folders)

    # --- what planning one batch of folders reads (agent.store.batch_facts)
    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]:
        return batch_facts.ledger_in_folders(self.database, library, folders)

    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
        return batch_facts.seen_in_folders(self.database, library, folders)

    def outputs_present(self, paths: Collection[str]) -> set[str]:
        return batch_facts.outputs_present(self.database, paths)

    def rows_holding_outputs(self, paths: Collection[str], *, other_than: Collection[str]) -> dict[str, LedgerEntry]:
        return batch_facts.rows_holding_outputs(self.database, paths, other_than=other_than)

    def vanished_sizes(self, library: str, sizes: Collection[int]) -> set[int]:
        return batch_facts.vanished_sizes(self.database, library, sizes)

    def vanished_with_fingerprints(
        self, library: str, fingerprints: Collection[str], *, hidden: tuple[str, ...] = ()
    ) -> dict[str, LedgerEntry]:
        return batch_facts.vanished_with_fingerprints(self.database, library, fingerprints, hidden=hidden)

    def vanished_rows(self, library: str) -> Iterator[LedgerEntry]:
        return batch_facts.vanished_rows(self.database, library)

    def ledger_folders(self, library: str) -> set[str]:
        return batch_facts.ledger_folders(self.database, library)

    def ledger_with_sizes(self, library: str, sizes: Collection[int]) -> list[LedgerEntry]:
        return batch_facts.ledger_with_sizes(self.database, library, sizes)

    def ledger_count(self, library: str) -> int:
        return batch_facts.ledger_count(self.database, library)

    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int:
        return batch_facts.count_under(self.database, library, prefixes, remembered=remembered)

    def outputs_recorded_in(self, library: str, output_folder: str) -> int:
        return batch_facts.outputs_recorded_in(self.database, library, output_folder)

    def remembered_file_count(self, library: str) -> int:
        return batch_facts.remembered_file_count(self.database, library)

    def recorded_output_folders(self) -> set[str]:
        return batch_facts.recorded_output_folders(self.database)

    def remember_fingerprints(self, library: str, fingerprints: Mapping[str, tuple[int, int, str]]) -> None:
        with self.transaction():
            batch_facts.remember_fingerprints(self.database, library, fingerprints)

    def load_archive_folders(self) -> dict[str, RememberedFolder]:
        return archive_memory.load_archive_folders(self.database)

    def load_archive_files(self, folders: Sequence[str]) -> dict[str, list[str]]:
        return archive_memory.load_archive_files(self.database, folders)

    def record_archive(
        self,
        *,
        folders: Iterable[FolderVisit],
        listed: Mapping[str, Sequence[str]],
        before_walk: Mapping[str, RememberedFolder] | None = None,
    ) -> dict[str, RememberedFolder]:
        return archive_memory.record_archive(self.database, folders=folders, listed=listed, before_walk=before_walk)

    # --- users
    def load_users(self) -> tuple[UserRecord, ...]:
        return users.load_users(self.database)

    def find_user(self, name: str) -> UserRecord | None:
        return users.find(self.database, name)

    def add_generated_admin(self, *, name: str, password_hash: str, now: str) -> None:
        users.add_generated_admin(self.database, name=name, password_hash=password_hash, now=now)

    def apply_user_change(self, change: UserChange, *, now: str) -> None:
        users.apply(self.database, change, now=now)

    # --- holds
    def load_holds(self) -> dict[str, Hold]:
        return holds.load_holds(self.database)

    def hold(self, library: str, *, reason: str, since: str) -> Hold:
        return holds.hold(self.database, library, reason=reason, since=since)

    def release(self, library: str) -> bool:
        return holds.release(self.database, library)

    # --- status
    def set_gate(self, *, reasons: tuple[str, ...], now: datetime) -> None:
        agent_status.set_gate(self.database, reasons=reasons, now=now)

    def gate_reasons(self) -> tuple[tuple[str, ...], str | None]:
        return agent_status.gate_reasons(self.database)

    # --- history
    def record_history(self, finished: history.Finished) -> None:
        with self.transaction():
            history.record(self.database, finished)

    def sample_queue(self, *, day: str, length: int) -> None:
        history.sample_queue(self.database, day=day, length=length)

    def history_days(self, first_day: str) -> list[history.Day]:
        return history.days_from(self.database, first_day)

    def recent_history(self, *, first_day: str, limit: int) -> list[history.Event]:
        return history.recent(self.database, first_day=first_day, limit=limit)

    def prune_history(self, *, before_day: str) -> int:
        with self.transaction():
            return history.prune(self.database, before_day=before_day)

    # --- leases
    def claim(
        self,
        host: str,
        *,
        libraries: Collection[str],
        lease: timedelta,
        library_order: Sequence[str],
        order: QueueOrder | None = None,
    ) -> Claim | None:
        return leases.claim(
            self.database, host, libraries=libraries, lease=lease, library_order=library_order, order=order
        )

    def heartbeat(
        self, job_id: int, token: int, *, progress: float | None, lease: timedelta, remaining: int | None = None
    ) -> Heartbeat:
        return leases.heartbeat(self.database, job_id, token, progress=progress, lease=lease, remaining=remaining)

    def remaining_bytes(self, *, other_than: str | None) -> int:
        return leases.remaining_bytes(self.database, other_than=other_than)

    def release_claim(self, job_id: int, token: int, *, reason: str) -> Job:
        return leases.release(self.database, job_id, token, reason=reason)

    def expire_leases(self, *, host_loss_cap: int) -> list[Job]:
        return leases.expire_leases(self.database, host_loss_cap=host_loss_cap)

    def fold_tallies(self) -> bool:
        return tallies.fold(self.database)

    def finish_claimed(
        self,
        job_id: int,
        token: int,
        entry: LedgerEntry,
        *,
        encoded_at: str,
        output_size: int | None = None,
        now: datetime,
    ) -> Job:
        return leases.finish_claimed(
            self.database, job_id, token, entry, encoded_at=encoded_at, output_size=output_size, now=now
        )

    def lease_of(self, job_id: int) -> Lease | None:
        return leases.lease_of(self.database, job_id)

    # --- the planner's lease and the hosts
    def take_or_renew_leadership(self, host: str, *, lease: timedelta) -> Leadership | None:
        return leader.take_or_renew(self.database, host, lease=lease)

    def resign(self, host: str, epoch: int) -> bool:
        return leader.resign(self.database, host, epoch)

    def leadership(self) -> Leadership | None:
        return leader.current(self.database)

    def fenced(self, leadership: Leadership) -> DatabaseStore:
        return DatabaseStore(FencedDatabase(self.database, leadership))

    def report_host(self, report: HostReport) -> str:
        return hosts.report(self.database, report)

    def list_hosts(self) -> list[HostRow]:
        return hosts.list_hosts(self.database)

    # --- revoked tokens
    def revoke_token(self, token_id: str, *, expires_at: str, now: str) -> None:
        tokens.revoke(self.database, token_id, expires_at=expires_at, now=now)

    def is_revoked(self, token_id: str) -> bool:
        return tokens.is_revoked(self.database, token_id)
