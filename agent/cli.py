"""The `hb2r` command line.

`hb2r COMMAND [options] [CONFIG]`: commands that need the config take it as the last
argument, defaulting to `$HB2R_CONFIG`, then `/etc/hb2r/config.yaml`. Exit codes: 0
success (for `plan`: in sync), 1 error, 2 `plan` has changes pending.

Heavy imports (pydantic, the store, structlog) happen inside the commands that need them,
so `hb2r --version` and `hb2r plan` start quickly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__

if TYPE_CHECKING:
    from agent.config import Loaded
    from agent.store.jobs import Job, JobState

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2


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
    _config_argument(plan)
    plan.set_defaults(handler=_plan)

    jobs = commands.add_parser("jobs", help="list the transcode jobs (reads only; works while the agent runs)")
    jobs.add_argument(
        "--state",
        type=_job_state,
        metavar="STATE",
        help="only jobs in this state: queued, running, done, failed, dead or cancelled",
    )
    jobs.add_argument("--library", metavar="LIBRARY", help="only jobs of this library")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")
    _config_argument(jobs)
    jobs.set_defaults(handler=_jobs)

    retry = commands.add_parser(
        "retry",
        help="queue a dead, failed or cancelled job again, or every dead job",
        usage="hb2r retry [-h] (JOB_ID | --dead) [CONFIG]",
    )
    retry.add_argument("job_id", nargs="?", metavar="JOB_ID", help="the job to queue again (its id in hb2r jobs)")
    retry.add_argument("--dead", action="store_true", help="queue every dead job again")
    _config_argument(retry)
    retry.set_defaults(handler=_retry, usage_error=retry.error)

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
        print(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was done.", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded


def _run(arguments: argparse.Namespace) -> int:
    from agent.runtime import run
    from agent.store.db import StateError

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    try:
        return run(_config_path(arguments), loaded.config)
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


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
        f"{_config_path(arguments)}: valid: {_count(len(config.libraries), 'library', 'libraries')} ({names}), "
        f"{_count(len(config.presets), 'preset')}, {_count(len(config.users), 'user')}; archive {config.paths.archive}"
    )
    return EXIT_OK


def _plan(arguments: argparse.Namespace) -> int:
    import gc
    import json
    import sqlite3
    import time

    from agent.observe import observe
    from agent.plan import plan
    from agent.render import render_text, to_json
    from agent.store.db import StateError, database_path, open_readonly
    from agent.store.state import load_ledger

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    config = loaded.config
    try:
        connection = open_readonly(config.paths.state_dir, warn=_warn)
        try:
            ledger = load_ledger(connection)
        finally:
            if connection is not None:
                connection.close()
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as error:  # e.g. a table lost to a damaged disk or a bad restore
        print(f"error: state database {database_path(config.paths.state_dir)}: {error}", file=sys.stderr)
        return EXIT_ERROR
    # A short-lived command that builds a few hundred thousand objects and frees none of
    # them early: the cyclic collector's repeated passes would cost a third of the run.
    gc.disable()
    now_ns = time.time_ns()
    observation = observe(config, ledger, now_ns=now_ns, warn=_warn)
    result = plan(config, observation, ledger, now_ns=now_ns)
    if arguments.json:
        sys.stdout.write(json.dumps(to_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(result, config, observation))
    sys.stdout.flush()
    return EXIT_PENDING if result.pending else EXIT_OK


def _jobs(arguments: argparse.Namespace) -> int:
    import json
    import sqlite3
    from dataclasses import asdict
    from datetime import UTC, datetime

    from agent.render_jobs import jobs_table
    from agent.store.db import StateError, database_path, open_readonly
    from agent.store.jobs import list_jobs
    from agent.store.status import gate_reasons

    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    state_dir = loaded.config.paths.state_dir
    found: list[Job] = []
    held_back: tuple[str, ...] = ()
    try:
        connection = open_readonly(state_dir, warn=_warn)
        if connection is not None:
            try:
                found = list_jobs(connection, state=arguments.state, library=arguments.library)
                held_back, _ = gate_reasons(connection)
            finally:
                connection.close()
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as error:
        print(f"error: state database {database_path(state_dir)}: {error}", file=sys.stderr)
        return EXIT_ERROR
    if arguments.json:
        print(json.dumps({"held_back": list(held_back), "jobs": [asdict(job) for job in found]}, indent=2))
        return EXIT_OK
    if held_back:
        print(f"No job may start now: {'; '.join(held_back)}.")
    if connection is None:
        print(f"No jobs: there is no state database at {database_path(state_dir)} yet.")
    elif not found:
        only = f" {arguments.state}" if arguments.state else ""
        where = f" in library {arguments.library}" if arguments.library else ""
        print(f"No{only} jobs{where}.")
    else:
        sys.stdout.write(jobs_table(found, now=datetime.now(UTC)))
    return EXIT_OK


def _job_state(value: str) -> JobState:
    from agent.store.jobs import JobState

    try:
        return JobState(value)
    except ValueError:
        known = ", ".join(JobState)
        raise argparse.ArgumentTypeError(f"unknown state {value!r} (choose from {known})") from None


def _retry(arguments: argparse.Namespace) -> int:
    import sqlite3
    from datetime import UTC, datetime

    from agent.render_jobs import first_line, printable
    from agent.store import jobs
    from agent.store.db import StateError, database_path, open_database, transaction

    job_id = _retry_target(arguments)
    loaded = _load(arguments)
    if loaded is None:
        return EXIT_ERROR
    state_dir = loaded.config.paths.state_dir
    try:
        exists = database_path(state_dir).is_file()
    except OSError:
        exists = True  # let opening it say what is wrong
    if not exists:  # nothing to retry; do not make a database to say so
        if job_id is None:
            print("No dead jobs to retry.")
            return EXIT_OK
        print(f"error: there is no job {job_id} (no state database at {database_path(state_dir)} yet)", file=sys.stderr)
        return EXIT_ERROR
    now = datetime.now(UTC)
    try:
        connection = open_database(state_dir)
        try:
            with transaction(connection):
                if job_id is None:
                    before = {job.id: job for job in jobs.list_jobs(connection, state=jobs.JobState.DEAD)}
                    requeued = jobs.retry_dead(connection, now=now)
                    left = jobs.counts(connection)[jobs.JobState.DEAD]
                else:
                    found = jobs.get(connection, job_id)
                    before = {} if found is None else {job_id: found}
                    requeued, left = [jobs.retry(connection, job_id, now=now)], 0
        finally:
            connection.close()
    except jobs.JobError as error:
        print(f"error: {error}; nothing was requeued", file=sys.stderr)
        return EXIT_ERROR
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as error:
        print(f"error: state database {database_path(state_dir)}: {error}", file=sys.stderr)
        return EXIT_ERROR
    for job in requeued:
        was = before[job.id]
        reason = f": {first_line(was.error)}" if first_line(was.error) else ""
        print(f"Requeued job {job.id} ({printable(job.library)}: {printable(job.rel_path)}), was {was.state}{reason}")
    if job_id is None and not requeued and not left:
        print("No dead jobs to retry.")
    if left:
        print(f"Left {_count(left, 'dead job')} as they are: another job for the same file supersedes them.")
    return EXIT_OK


def _retry_target(arguments: argparse.Namespace) -> int | None:
    """Return the JOB_ID to retry, or None for --dead; exit with a usage error if neither or both."""
    job_id, config = arguments.job_id, arguments.config
    if arguments.dead and job_id is not None:
        if config is not None:
            arguments.usage_error("give either JOB_ID or --dead, not both")
        arguments.config, job_id = Path(job_id), None  # `retry --dead CONFIG`
    if job_id is None:
        if not arguments.dead:
            arguments.usage_error("give the JOB_ID of a job to retry (see hb2r jobs) or --dead")
        return None
    try:
        return int(job_id)
    except ValueError:
        arguments.usage_error(f"JOB_ID must be a job's number (see hb2r jobs), got {job_id!r}; or --dead for all dead")
        raise  # not reached: usage_error exits


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
            print("error: the two passwords differ; nothing was printed", file=sys.stderr)
            return EXIT_ERROR
    try:
        print(hash_password(password, rounds=arguments.rounds))
    except PasswordRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else (many or one + 's')}"
