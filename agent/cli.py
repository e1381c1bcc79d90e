"""The `hb2r` command line.

`hb2r COMMAND [options] [CONFIG]`: commands that need the config take it as the last
argument, defaulting to `$HB2R_CONFIG`, then `/etc/hb2r/config.yaml`. Exit codes: 0
success (for `plan`: in sync), 1 error, 2 `plan` has changes pending.

Heavy imports (pydantic, the store, structlog) happen inside the commands that need them,
so `hb2r --version` and `hb2r plan` start quickly. This module is argument parsing and
dispatch: the bodies of `jobs` and `retry` are in `agent.cli_jobs`, of `backup` and
`restore` in `agent.backup`, of `store migrate` in `agent.cli_store`, of `notify-test` in
`agent.cli_notify`, of `ops` (which needs no config) in `agent.ops`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.cli_output import EXIT_ERROR, EXIT_OK, EXIT_PENDING, fail, warn
from agent.descriptors import OutOfDescriptors
from agent.wording import counted

if TYPE_CHECKING:
    from agent.config import Loaded
    from agent.store.jobs import JobState


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        code: int = arguments.handler(arguments)
        if argv is None and arguments.command == "plan":
            # The process ends here and holds nothing to clean up: skip freeing every
            # object of a big plan one by one, a tenth of the run on 100,000 files.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    except BrokenPipeError:
        # The reader (`hb2r plan | head`) went away; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except OutOfDescriptors as error:  # says nothing about the libraries: no plan rather than a wrong one
        return fail(f"{error}; raise the file limit (ulimit -n) and try again")
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hb2r",
        description="Keep one verified HandBrake transcode of every video in a Resilio Sync folder.",
    )
    parser.add_argument("--version", action="version", version=f"hb2r {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent: keep the archive in step with the watched folders")
    _config_argument(run)
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check the config file and explain every mistake")
    validate.add_argument("--show", action="store_true", help="print the effective config (secrets redacted)")
    _config_argument(validate)
    validate.set_defaults(handler=_validate)

    plan = commands.add_parser("plan", help="show what the agent would do, without doing it")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--probe",
        action="store_true",
        help="read the media facts of new files now, to show what the rules make of them (slow on a big library)",
    )
    _config_argument(plan)
    plan.set_defaults(handler=_plan)

    jobs = commands.add_parser(
        "jobs", help="list the transcode jobs (reads only; works while the agent runs); --front ID moves one first"
    )
    jobs.add_argument(
        "--state",
        type=_job_state,
        metavar="STATE",
        help="only jobs in this state: queued, running, done, failed, dead or cancelled",
    )
    jobs.add_argument("--library", metavar="LIBRARY", help="only jobs of this library")
    jobs.add_argument(
        "--limit",
        type=_page_limit,
        default=100,
        metavar="N",
        help="show the newest N jobs (default 100, at most 10000); the last line says how to see older ones",
    )
    jobs.add_argument(
        "--before", type=_job_number, metavar="JOB_ID", help="only jobs older than this one: the next page"
    )
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")
    jobs.add_argument(
        "--front",
        type=_job_number,
        metavar="JOB_ID",
        help="move this queued or failed job to the front of the queue (it starts next; a failed one's wait is "
        "waived) instead of listing",
    )
    _config_argument(jobs)
    jobs.set_defaults(handler=_jobs)

    hosts = commands.add_parser("hosts", help="list the hosts sharing the store, and which one plans (reads only)")
    _config_argument(hosts)
    hosts.set_defaults(handler=_hosts)

    notify_test = commands.add_parser(
        "notify-test", help="send one test message to each notify target and say what became of each"
    )
    _config_argument(notify_test)
    notify_test.set_defaults(handler=_notify_test)

    retry = commands.add_parser(
        "retry",
        help="queue a dead, failed or cancelled job again, or every dead job",
        usage="hb2r retry [-h] (JOB_ID | --dead) [CONFIG]",
    )
    retry.add_argument("job_id", nargs="?", metavar="JOB_ID", help="the job to queue again (its id in hb2r jobs)")
    retry.add_argument("--dead", action="store_true", help="queue every dead job again")
    _config_argument(retry)
    retry.set_defaults(handler=_retry, usage_error=retry.error)

    backup = commands.add_parser(
        "backup", help="write a consistent copy of the state (safe while the agent runs; PostgreSQL: pg_dump)"
    )
    backup.add_argument("--to", type=Path, required=True, metavar="FILE", help="the backup file to write (made 0600)")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    _config_argument(backup)
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser(
        "restore", help="replace the state with a backup (stop the agent first; PostgreSQL: into an empty database)"
    )
    restore.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE", help="a backup file")
    _config_argument(restore)
    restore.set_defaults(handler=_restore)

    store = commands.add_parser("store", help="move the state to another store (hb2r store migrate -h)")
    store_actions = store.add_subparsers(dest="store_action", metavar="ACTION", required=True)
    store_migrate = store_actions.add_parser(
        "migrate", help="copy the SQLite state into an empty PostgreSQL database (stop the agent first)"
    )
    store_migrate.add_argument(
        "--to", metavar="URL", help="postgresql://user@host[:port]/database (default: store.url, if PostgreSQL)"
    )
    store_migrate.add_argument(
        "--password-file", type=Path, metavar="FILE", help="the PostgreSQL password (default: store.password_file)"
    )
    _config_argument(store_migrate)
    store_migrate.set_defaults(handler=_store_migrate)

    ops = commands.add_parser(
        "ops", help="run a deployment playbook (deploy, backup, rollback, status, logs, restart, stop) from a checkout"
    )
    ops.add_argument("action", metavar="ACTION", help="deploy, backup, rollback, status, logs, restart or stop")
    ops.add_argument("-i", "--inventory", type=Path, required=True, metavar="INVENTORY", help="Ansible inventory file")
    ops.add_argument("--playbooks", type=Path, metavar="DIR", help="playbooks folder (default: checkout's playbooks/)")
    ops.add_argument(
        "-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE", help="an extra variable (repeatable)"
    )
    ops.add_argument("--check", action="store_true", help="Ansible check mode: show what would change, change nothing")
    ops.set_defaults(handler=_ops)

    schema = commands.add_parser("schema", help="print the config file's JSON Schema")
    schema.set_defaults(handler=_schema)

    hash_password = commands.add_parser("hash-password", help="print a bcrypt hash for the users: list")
    hash_password.add_argument("--stdin", action="store_true", help="read the password from standard input")
    hash_password.add_argument(
        "--rounds", type=int, default=int(os.environ.get("BCRYPT_ROUNDS") or 12), help="bcrypt cost (4-31, default 12)"
    )
    hash_password.set_defaults(handler=_hash_password)
    return parser


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=None,
        metavar="CONFIG",
        help="config file (default: $HB2R_CONFIG, then /etc/hb2r/config.yaml)",
    )


def _config_path(arguments: argparse.Namespace) -> Path:
    from agent.config import default_config_path

    return arguments.config or default_config_path()


def _load(arguments: argparse.Namespace) -> Loaded | None:
    """Load the config; print its warnings, or its problems and return None."""
    from agent.config import ConfigError, load_config

    path = _config_path(arguments)
    try:
        loaded = load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        count = len(error.problems)
        print(f"{path}: {counted(count, 'problem')}; nothing was done.", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded


def _run(arguments: argparse.Namespace) -> int:
    from agent.runtime import run
    from agent.store import StoreError
    from agent.store.choose import store_failure
    from agent.store.db import StateError
    from agent.store.lock import LockHeld

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    try:
        return run(_config_path(arguments), loaded.config)
    except LockHeld as error:
        then = (
            "start the agent when it has finished"
            if error.holder.purpose in ("restore", "store migrate")
            else "one agent per state_dir"
        )
        return fail(f"{error}; {then}")
    except StateError as error:
        return fail(error)
    except StoreError as error:  # the store cannot be reached at start, or another agent holds it
        return fail(f"{store_failure(loaded.config, error)}")


def _validate(arguments: argparse.Namespace) -> int:
    from agent.config.show import effective_yaml

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    config = loaded.config
    if arguments.show:
        sys.stdout.write(effective_yaml(config))
        return EXIT_OK
    names = ", ".join(library.name for library in config.libraries) or "none"
    print(
        f"{_config_path(arguments)}: valid: {counted(len(config.libraries), 'library', 'libraries')} ({names}), "
        f"{counted(len(config.presets), 'preset')}, {counted(len(config.users), 'user')}; "
        f"archive {config.paths.archive}"
    )
    return EXIT_OK


def _plan(arguments: argparse.Namespace) -> int:
    import gc
    import time

    from agent.plan_command import NoState, PlanState, PlanWriter
    from agent.store.choose import read_state
    from agent.store.db import StateError
    from agent.watch import pick_up_now

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    config = loaded.config
    watch = {library.name: pick_up_now(library.source) for library in config.libraries}
    # A short-lived command that frees little early: the cyclic collector's repeated passes
    # over the batches' objects would cost a fifth of the run.
    gc.disable()
    now_ns = time.time_ns()

    def write(state: PlanState) -> bool:
        writer = PlanWriter(config, state, as_json=arguments.json, watch=watch, out=sys.stdout, now_ns=now_ns,
                            warn=warn, probe=arguments.probe)  # fmt: skip
        return writer.write()

    try:
        pending = read_state(config, write, warn=warn)
        if pending is None:  # no state yet
            pending = write(NoState())
    except StateError as error:
        return fail(error)
    sys.stdout.flush()
    return EXIT_PENDING if pending else EXIT_OK


def _jobs(arguments: argparse.Namespace) -> int:
    from agent.cli_jobs import front_job, list_jobs

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    if arguments.front is not None:
        return front_job(arguments.front, loaded.config)
    return list_jobs(arguments, loaded.config)


def _hosts(arguments: argparse.Namespace) -> int:
    from agent.cli_hosts import list_hosts

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    return list_hosts(loaded.config)


def _notify_test(arguments: argparse.Namespace) -> int:
    from agent.cli_notify import notify_test

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    return notify_test(loaded.config)


def _job_state(value: str) -> JobState:
    from agent.store.jobs import JobState

    try:
        return JobState(value)
    except ValueError:
        known = ", ".join(JobState)
        raise argparse.ArgumentTypeError(f"unknown state {value!r} (choose from {known})") from None


def _page_limit(value: str) -> int:
    from agent.cli_jobs import MAX_PAGE

    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAGE}, got {value[:40]!r}")
    return int(value)


def _job_number(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a job's number (see hb2r jobs), got {value[:40]!r}")
    return int(value)


def _retry(arguments: argparse.Namespace) -> int:
    from agent.cli_jobs import retry_jobs, retry_target

    job_id = retry_target(arguments)
    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    return retry_jobs(job_id, loaded.config)


def _backup(arguments: argparse.Namespace) -> int:
    from agent.backup import BackupError, backup, describe_backup

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    if loaded.config.store.is_postgres:
        from agent.backup_postgres import backup_postgres

        try:
            print(backup_postgres(loaded.config, arguments.to, force=arguments.force))
        except BackupError as error:
            return fail(error)
        return EXIT_OK
    try:
        written = backup(loaded.config.paths.state_dir, arguments.to, force=arguments.force)
    except BackupError as error:
        return fail(error)
    print(describe_backup(written))
    return EXIT_OK


def _restore(arguments: argparse.Namespace) -> int:
    from agent.backup import BackupError, describe_restore, restore
    from agent.store.lock import LockHeld

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    if loaded.config.store.is_postgres:
        from agent.backup_postgres import restore_postgres

        try:
            print("\n".join(restore_postgres(loaded.config, arguments.source)))
        except BackupError as error:
            return fail(f"{error}; nothing was restored")
        return EXIT_OK
    try:
        restored = restore(loaded.config.paths.state_dir, arguments.source)
    except LockHeld as error:
        first = (
            "wait for it to finish"
            if error.holder.purpose == "restore"
            else "stop it first (e.g. `systemctl stop hb2r`)"
        )
        return fail(f"{error}; {first}; nothing was changed")
    except BackupError as error:
        return fail(f"{error}; the state database was not changed")
    print("\n".join(describe_restore(restored)))
    return EXIT_OK


def _store_migrate(arguments: argparse.Namespace) -> int:
    from agent.cli_store import migrate_store

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    return migrate_store(arguments, config=loaded.config, config_path=_config_path(arguments))


def _ops(arguments: argparse.Namespace) -> int:
    from agent.ops import DEFAULT_PLAYBOOKS, OpsError, parse_extravars, run_action

    try:
        extravars = parse_extravars(arguments.extra_vars)
        return run_action(
            arguments.action,
            arguments.inventory,
            playbooks=arguments.playbooks or DEFAULT_PLAYBOOKS,
            extravars=extravars,
            check=arguments.check,
        )
    except OpsError as error:
        return fail(f"{error}; nothing was run")


def _schema(arguments: argparse.Namespace) -> int:
    import json

    from agent.config.models import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def _hash_password(arguments: argparse.Namespace) -> int:
    import getpass

    from agent.passwords import PasswordRefused, hash_password

    if arguments.stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            return fail("the two passwords differ; nothing was printed")
    try:
        print(hash_password(password, rounds=arguments.rounds))
    except PasswordRefused as error:
        return fail(error)
    return EXIT_OK
