"""`hb2r run`: the long-running agent's life, from start-up to a clean stop.

Start-up: open (and migrate) the store the config names (`agent.store.choose`). One that
cannot be opened — a PostgreSQL server that cannot be reached or refuses the password, a
schema newer than this hb2r — ends `hb2r run` at once with one line naming it and exit 1;
systemd's `Restart=on-failure` tries again every few seconds, so a database that comes up
later is found. (Once running, a failing store is what it is for SQLite: the pass or the
statement fails, /health says `unhealthy`, and the next pass tries again.) Several agents may
share one PostgreSQL database: each claims jobs under leases, and one at a time plans (the
planner's lease, `agent.leadership`, renewed every lease/3 with this host's row in `hosts`).
Then a job a crash left `running` after its
output was published is settled (ledger row, done: see `agent.recovery`), the other jobs left
`running` go back to `queued` and temp files in `.hb2r-partial` are removed; HandBrakeCLI is asked for its version
and presets — a library whose preset HandBrake does not know is held back with an error,
the others carry on. Then passes run on the schedule and the dispatcher starts jobs.

Signals: SIGTERM/SIGINT stop admitting, stop the running encodes (HandBrakeCLI cannot
resume), requeue them, remove their temp files and exit 0 — within CANCEL_GRACE_SECONDS
plus a little. SIGHUP, or a change of the config file's content, reloads the config: a
valid one takes effect at once (limits, libraries, presets, users), an invalid one is
logged with every error and the old one stays in force (and /health says `degraded`).
`server.listen` and `paths.state_dir` take effect on restart only.

HandBrakeCLI is probed (version, preset list) at start and on each reload. A probe that fails
(HandBrakeCLI missing, crashing, too slow) holds every library back with the reason, which
/health reports as `degraded`, and is tried again by the config watcher after
PROBE_RETRY_FIRST_SECONDS, doubling up to PROBE_RETRY_MAX_SECONDS, until it succeeds: then
the libraries queue again at once, with no reload or restart needed.

Notifications (`agent.notify`): the notifier starts with the agent, gets the targets of each
reloaded config and has CLOSE_GRACE_SECONDS at a stop. `<state_dir>/agent.running`
(`agent.store.clean_stop`) is written once the agent is up and removed at a clean stop: found
at start (or jobs left running), the agent before crashed, and the operator is told.

The HTTP service (`agent.api`) runs on the same event loop; READY=1 goes to systemd once it
answers, so `systemctl start` returning means /health can be asked.

New files are noticed as they arrive (agent/watch.py): each library's folders are watched
with inotify (on every host: a follower's watcher asks for passes that do nothing), a change
marks its folder in `AgentState.dirty_folders` and asks for a pass within a second; a pass
whose plan has files waiting to become stable asks for one more when the first of them is
(STABLE_MARGIN_SECONDS later). A library that cannot be watched is polled every
`scan.interval`, as before, and says why. After each pass the watcher looks again (a source
unmounted, mounted over or back); a reload watches added libraries and drops removed ones.

File descriptors (agent/descriptors.py): the soft RLIMIT_NOFILE is raised to the hard one
before anything is opened, and the HTTP service is capped below it. Running out anyway
(EMFILE/ENFILE, e.g. the host's table is full) is logged once a minute, whether asyncio met
it accepting a connection or a pass met it scanning; such a pass fails, /health says
`degraded` with the reason, and the next pass retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import descriptors, logs, publish, recovery, systemd
from agent.api.app import serve
from agent.api.context import assemble
from agent.auth import jwt_secret, user_sync
from agent.config import ConfigError, load_config
from agent.config.models import Config
from agent.engine import AgentState
from agent.handbrake.probe import FFPROBE, HandBrakeUnavailable, available_presets, handbrake_version
from agent.leadership import PlannerLease, lead_pass
from agent.login_limits import LoginLimits
from agent.notify import events as notify_events
from agent.notify.notifier import Notifier
from agent.observe import preset_hashes
from agent.presence import host_report, readable_libraries
from agent.resources import Sampler
from agent.scheduler import ReconcileSchedule
from agent.store import StoreError, clean_stop
from agent.store.choose import store_for_run, store_location
from agent.store.db import StateError
from agent.store.lock import agent_lock
from agent.store.protocol import Store
from agent.timestamps import stamp
from agent.watch import Watcher

CONFIG_CHECK_SECONDS = 5.0
# A pass for a file becoming stable runs this long after it is, so that it is stable then.
STABLE_MARGIN_SECONDS = 0.25
PROBE_RETRY_FIRST_SECONDS = 5.0
PROBE_RETRY_MAX_SECONDS = 300.0


def run(config_path: Path, config: Config) -> int:
    """Run the agent until SIGTERM/SIGINT; return the exit code.

    Raise LockHeld (a StateError naming the pid) if another agent or a restore uses the state_dir;
    StoreError if the store cannot be opened (PostgreSQL: unreachable, refused, a newer schema).
    """
    logs.configure()
    open_files = descriptors.raise_soft_limit()
    # Taken before the database is opened, held for the agent's life (see agent.store.lock).
    with agent_lock(config.paths.state_dir, purpose="run"):
        store = store_for_run(config)
        return asyncio.run(_Agent(config_path, config, store=store, open_files=open_files).main())


class _Agent:
    def __init__(self, config_path: Path, config: Config, *, store: Store, open_files: tuple[int, int]) -> None:
        self.config_path = config_path
        self.log = logs.get_logger("hb2r")
        self.open_files = open_files
        self.shortage = descriptors.OncePerInterval(self.log)
        self.config_digest = _digest(config_path)
        self.state = AgentState(config=config, store=store, preset_hashes={})
        self.stop_requested = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[None]] = set()
        self._watching: set[asyncio.Task[None]] = set()
        self._probe_delay: float | None = None  # None: the last HandBrakeCLI probe succeeded
        self._probe_retry_at = 0.0  # loop time of the next probe after one failed
        self.planner = PlannerLease(host=config.host.name, lease=config.store.lease, log=self.log)
        self.handbrake_version: str | None = None  # for the hosts table; None while HandBrakeCLI cannot tell

    async def main(self) -> int:
        config, store = self.state.config, self.state.store
        try:  # first: a secret others can read must stop the agent before it does anything
            secret = jwt_secret.load_secret(config.auth)
        except jwt_secret.SecretError as error:
            self.log.error("cannot start", reason=str(error))
            return 1
        previous_run = clean_stop.previous_run(config.paths.state_dir)  # None: the last agent stopped cleanly
        settled = recovery.settle_published(store, config, now=datetime.now(UTC))
        for job in settled:
            self.log.info("job settled", job=job.id, library=job.library, path=job.rel_path, output=job.output_path)
        requeued = store.requeue_running(now=datetime.now(UTC), host=config.host.name)  # other hosts' go on
        for job in requeued:
            self.log.info("job requeued", job=job.id, library=job.library, path=job.rel_path, reason="left by a crash")
        clean_own_partials(config, log=self.log)
        await self._apply_presets(config)
        user_sync.sync_users(store, config, now=datetime.now(UTC), log=self.log)
        self.state.held_libraries = store.load_holds()
        unsized = store.unsized_outputs()
        if unsized:
            sizes = await asyncio.to_thread(_output_sizes, config.paths.archive, unsized)
            with store.transaction():
                for output_path, size in sizes.items():
                    store.set_output_size(output_path, size)
        self.schedule = ReconcileSchedule(self._pass, interval=config.scan.interval)
        self.api = assemble(
            self.state,
            sampler=Sampler(lambda: self.state.config.paths.archive),  # a reload may move the archive
            secret=secret,
            request_scan=self.schedule.run_soon,
            log=self.log,
            now=datetime.now(UTC),
        )
        self.dispatcher = self.api.dispatcher
        self.notifier = Notifier(config.notify, log=self.log, observer=self.api.metrics)
        self.state.notify = self.notifier.emit
        self.notifier.start()
        if previous_run is not None or settled or requeued:  # jobs left running: a crash before the marker existed
            previous = previous_run or "an earlier agent, which left jobs running"
            self.log.warning("started after a crash", previous=previous, requeued=len(requeued), settled=len(settled))
            self.state.notify(notify_events.started_after_crash(
                host=config.host.name, previous=previous, requeued=len(requeued), settled=len(settled)
            ))  # fmt: skip
        self.watcher = Watcher(
            mark=self._mark_dirty, on_burst=self.schedule.run_soon, log=self.log, statuses=self.state.watch
        )
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        max_connections = descriptors.connection_cap(self.open_files[0])
        try:
            runner = await serve(self.api, max_connections=max_connections)
        except OSError as error:
            self.log.error("cannot start: cannot listen", listen=config.server.listen, reason=error.strerror)
            self.api.checker.close()
            self.watcher.close()
            await self.notifier.close()
            return 1
        try:
            clean_stop.mark_running(config.paths.state_dir, pid=os.getpid(), started_at=stamp(datetime.now(UTC)))
        except (OSError, StateError) as error:  # the agent runs all the same; only a crash would go untold
            self.log.warning("cannot mark the agent running; a crash will not be told", reason=str(error))
        # The first walk of a big library takes a while: it goes on beside the first pass.
        self._watch_soon(self.watcher.watch(_sources(config)))
        self._renew()  # before the first pass: on one host it plans at once, as ever
        await self._report_host()
        self.schedule.start()
        keeping = asyncio.create_task(self._keep_lease(), name="planner-lease")
        dispatching = asyncio.create_task(self.dispatcher.loop(), name="dispatcher")
        watching = asyncio.create_task(self._watch_config(), name="config-watch")
        systemd.notify("READY=1")
        self.log.info(
            "agent started",
            config=str(self.config_path),
            libraries=[lib.name for lib in config.libraries],
            listen=config.server.listen,
            store=store_location(config),  # the file, or PostgreSQL host:port/database: never a password
            open_files_limit=self.open_files[0],
            max_connections=max_connections,
        )
        await self.stop_requested.wait()

        systemd.notify("STOPPING=1")
        self.log.info("agent stopping")
        await runner.cleanup()
        self.api.checker.close()
        self.schedule.shutdown()
        for task in self._watching:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._watching)
        self.watcher.close()
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        with contextlib.suppress(StoreError):
            self.planner.resign(self.state.store)
        watching.cancel()
        await self.dispatcher.stop()
        dispatching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(dispatching, watching)
        await self.notifier.close()
        self.state.store.close()
        try:
            clean_stop.mark_stopped(self.state.config.paths.state_dir)
        except OSError as error:
            self.log.warning("cannot mark the agent stopped; its next start tells a crash", reason=str(error))
        self.log.info("agent stopped")
        return 0

    def _mark_dirty(self, library: str, folders: set[str]) -> None:
        self.state.dirty_folders.setdefault(library, set()).update(folders)

    async def _pass(self) -> None:
        if self.stop_requested.is_set():
            return
        try:
            planned = await lead_pass(self.state, self.planner, log=self.log)  # nothing on a follower
            summary = self.state.last_pass
            if planned is not None and summary is not None:
                stable_at = summary.next_stable_at
                margin = timedelta(seconds=STABLE_MARGIN_SECONDS)
                self.schedule.wake_at(None if stable_at is None else stable_at + margin)
        except descriptors.OutOfDescriptors as error:
            self.state.pass_problem = f"reconcile pass failed, retried next pass: {error}"
            self.shortage.report("reconcile pass failed: out of file descriptors", reason=str(error))
        except Exception:
            self.log.exception("reconcile pass failed")
        else:
            self.state.pass_problem = None
        self.dispatcher.wake()
        self._watch_soon(self.watcher.refresh())

    def _watch_soon(self, looking: Coroutine[Any, Any, None]) -> None:
        """Have the watcher look at the libraries beside the passes and reloads: it stats each
        source, which a hung network mount would hold up (the watcher skips a refresh while one runs)."""
        if self.stop_requested.is_set():  # stopping: the watcher is closed, or about to be
            looking.close()
            return
        task = asyncio.create_task(self._logged(looking), name="watch-libraries")
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def _logged(self, looking: Coroutine[Any, Any, None]) -> None:
        try:
            await looking
        except Exception:
            self.log.exception("watching the libraries failed")

    async def _keep_lease(self) -> None:
        """Every lease/3: renew (or take) the planner's lease and report this host; a new leader plans at once."""
        reporting: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(self.planner.renew_every.total_seconds())
                if self._renew():
                    self.schedule.run_soon()
                # A source mount that hangs delays this host's report (it looks at the mounts), never its lease.
                if reporting is None or reporting.done():
                    reporting = asyncio.create_task(self._report_host(), name="host-report")
        finally:
            if reporting is not None:
                reporting.cancel()

    def _renew(self) -> bool:
        """Renew the planner's lease; return whether this host just became the leader."""
        was_leading = self.planner.held is not None
        try:
            self.planner.renew(self.state.store)
        except StoreError as error:  # the lease runs out by itself; the fence refuses a lapsed pass
            self.log.warning("cannot renew the planner's lease", reason=str(error))
            return False
        return not was_leading and self.planner.held is not None

    async def _report_host(self) -> None:
        """Upsert this host's row in the hosts table."""
        libraries = await asyncio.to_thread(readable_libraries, self.state.config)
        try:
            self.state.store.report_host(
                host_report(
                    self.state.config,
                    handbrake_version=self.handbrake_version,
                    libraries=libraries,
                    running_jobs=len(self.dispatcher.running),
                )
            )
        except StoreError as error:
            self.log.warning("cannot report this host", reason=str(error))

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Log what asyncio reports; running out of descriptors once a minute (accept meets it per connection)."""
        error = context.get("exception")
        if error is not None and descriptors.is_shortage(error):
            self.shortage.report("out of file descriptors", where=context.get("message"), reason=str(error))
            return
        loop.default_exception_handler(context)

    async def _watch_config(self) -> None:
        """Reload when the config file's content changes; ping the watchdog and look for wall-clock
        steps between passes (this loop sleeps on the monotonic clock)."""
        while True:
            await asyncio.sleep(min(CONFIG_CHECK_SECONDS, systemd.watchdog_interval() or CONFIG_CHECK_SECONDS))
            systemd.notify("WATCHDOG=1")
            if self.schedule.check_clock():
                self.log.warning("wall clock stepped back; a pass runs now and the schedule follows the new time")
            digest = await asyncio.to_thread(_digest, self.config_path)
            if digest is not None and digest != self.config_digest:
                await self._reload("config file changed")
            await self._retry_probe()

    async def _retry_probe(self) -> None:
        """Probe HandBrakeCLI again if the last probe failed and its backoff has passed."""
        if self._probe_delay is None or asyncio.get_running_loop().time() < self._probe_retry_at:
            return
        async with self._reload_lock:
            if self._probe_delay is None:
                return
            await self._apply_presets(self.state.config)
        if self._probe_delay is None:
            self.log.info("HandBrakeCLI answers again; libraries may queue")
            self.schedule.run_soon()
            self.dispatcher.wake()

    def _reload_soon(self) -> None:
        task = asyncio.create_task(self._reload("SIGHUP"), name="reload")
        self._reloads.add(task)  # keep a reference until it is done
        task.add_done_callback(self._reloads.discard)

    async def _reload(self, why: str) -> None:
        # One reload at a time: a SIGHUP during a reload, or the watcher at the same moment,
        # must not let an older config finish last.
        async with self._reload_lock:
            await self._reload_once(why)

    async def _reload_once(self, why: str) -> None:
        self.config_digest = _digest(self.config_path)
        try:
            loaded = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as error:
            self.log.error(
                "config not reloaded; the old one stays in force",
                trigger=why,
                errors=[str(problem) for problem in error.problems],
            )
            count = len(error.problems)
            first = str(error.problems[0]) if error.problems else str(error)
            self.state.reload_error = f"{count} {'problem' if count == 1 else 'problems'} in the new config: {first}"
            return
        for warning in loaded.warnings:
            self.log.warning("config warning", problem=str(warning))
        old = self.state.config
        new = loaded.config
        if new.paths.state_dir != old.paths.state_dir:
            self.log.warning("paths.state_dir changed; it takes effect on restart", trigger=why)
        if new.server.listen != old.server.listen:
            self.log.warning("server.listen changed; it takes effect on restart", trigger=why)
        try:
            secret = jwt_secret.load_secret(new.auth)
        except jwt_secret.SecretError as error:
            self.log.error("config not reloaded; the old one stays in force", trigger=why, errors=[str(error)])
            self.state.reload_error = str(error)
            return
        self.state.config = new
        self.api.secret = secret
        self.notifier.reconfigure(new.notify)
        if new.auth.login_rate_limit != old.auth.login_rate_limit:
            self.api.limiter = LoginLimits(new.auth.login_rate_limit)
        user_sync.sync_users(self.state.store, new, now=datetime.now(UTC), log=self.log)
        self.state.config_generation += 1
        self.state.reload_error = None
        await self._apply_presets(new)
        self._watch_soon(self.watcher.watch(_sources(new)))
        if new.scan.interval != old.scan.interval:
            self.schedule.set_interval(new.scan.interval)
        self.log.info("config reloaded", trigger=why)
        self.schedule.run_soon()
        self.dispatcher.wake()

    async def _apply_presets(self, config: Config) -> None:
        """Compute preset identities and hold back libraries whose preset HandBrake lacks.

        If HandBrakeCLI cannot be probed, hold back every library and schedule another probe.
        """
        warnings: list[str] = []

        def warn(message: str) -> None:
            warnings.append(message)
            self.log.warning(message)

        # Two HandBrakeCLI start-ups of about half a second each: run them side by side.
        hashes, listed, version = await asyncio.gather(
            asyncio.to_thread(preset_hashes, config, warn=warn),
            asyncio.to_thread(available_presets, config.handbrake.binary),
            asyncio.to_thread(handbrake_version, config.handbrake.binary),  # for the hosts table
            return_exceptions=True,
        )
        self.handbrake_version = version if isinstance(version, str) else None
        if isinstance(hashes, BaseException):
            raise hashes
        if isinstance(listed, BaseException) and not isinstance(listed, HandBrakeUnavailable):
            raise listed
        self.state.preset_hashes = hashes
        broken: dict[str, str] = {}
        probe_error: str | None = None
        if isinstance(listed, HandBrakeUnavailable):
            probe_error = str(listed)
        elif not hashes and config.presets:  # its version is unknown: no preset identity, nothing queues
            probe_error = warnings[0] if warnings else f"{config.handbrake.binary} --version failed"
        self._schedule_probe(failed=probe_error is not None)
        if probe_error is not None or isinstance(listed, BaseException):
            broken = {library.name: f"{probe_error} (HandBrakeCLI is probed again)" for library in config.libraries}
        else:
            for library in config.libraries:
                preset = config.presets[library.preset]
                if preset.import_file is None and preset.handbrake not in listed:
                    broken[library.name] = (
                        f"preset {library.preset!r}: HandBrake has no preset {preset.handbrake!r} "
                        "(see HandBrakeCLI --preset-list)"
                    )
        if shutil.which(FFPROBE) is None:  # without it no output can be verified, so none is made
            missing = f"{FFPROBE} is missing (Debian package ffmpeg): outputs cannot be verified"
            for library in config.libraries:
                broken.setdefault(library.name, missing)
        for name, reason in broken.items():
            if self.state.broken_libraries.get(name) != reason:
                self.log.error("library cannot encode", library=name, reason=reason)
        self.state.broken_libraries = broken

    def _schedule_probe(self, *, failed: bool) -> None:
        """After a failed probe, set when to probe again (backoff doubling); after a good one, stop."""
        if not failed:
            self._probe_delay = None
            return
        delay = PROBE_RETRY_FIRST_SECONDS if self._probe_delay is None else self._probe_delay * 2
        self._probe_delay = min(delay, PROBE_RETRY_MAX_SECONDS)
        self._probe_retry_at = asyncio.get_running_loop().time() + self._probe_delay


def clean_own_partials(config: Config, *, log: Any) -> None:
    """Remove the temp files interrupted encodes of this agent on this host left in the archive
    (other hosts sharing the archive may still be encoding into theirs)."""
    if config.paths.archive.is_dir():
        instance = publish.instance_tag(config.paths.state_dir)
        for path in publish.clean_partials(config.paths.archive, instance=instance, host=config.host.name):
            log.info("temp file removed", path=str(path))


def _sources(config: Config) -> dict[str, Path]:
    return {library.name: library.source for library in config.libraries}


def _output_sizes(archive: Path, output_paths: list[str]) -> dict[str, int]:
    """Return the sizes of outputs published before sizes were kept (for space saved)."""
    sizes = {}
    for output_path in output_paths:
        try:
            sizes[output_path] = (archive / output_path).stat().st_size
        except OSError:
            continue
    return sizes


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
