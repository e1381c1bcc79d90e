"""GET /api/status (libraries, plan, gate) and GET /api/system (the host and the encodes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent.api.context import context_of
from agent.api.hosts import leader_view
from agent.api.security import requires
from agent.api.views import encodes_view, gate_view, system_view
from agent.engine import rule_skips, update_conditions
from agent.mounts import WatchStatus
from agent.store import decisions, ledger
from agent.store.scans import FullPass
from agent.timestamps import stamp

COUNTED_STATES = ("done", "queued", "running", "failed", "dead", "cancelled")


@requires("user")
async def status(request: web.Request) -> web.Response:
    context = context_of(request)
    state = context.state
    now = datetime.now(UTC)
    conditions = update_conditions(state, now=now)
    counts = state.store.counts_by_library()
    sizes = state.store.bytes_by_library()
    decided = state.store.decisions_by_library()
    skipped = rule_skips(state)
    waiting = state.last_pass.waiting if state.last_pass else {}
    libraries: list[dict[str, Any]] = []
    for library in state.config.libraries:
        condition = conditions[library.name]
        found = sizes.get(library.name, ledger.LibraryBytes(0, 0, 0))
        by_rules = decided.get(library.name, decisions.LibraryDecisions())
        by_state = counts.get(library.name, {})
        watch = state.watch.get(library.name)
        libraries.append(
            {
                "name": library.name,
                "source": str(library.source),
                "output": library.output,
                "preset": library.preset,
                "condition": {
                    "status": condition.status,
                    "reason": condition.reason,
                    "since": stamp(condition.since),
                },
                "counts": {
                    **{state_name: by_state.get(state_name, 0) for state_name in COUNTED_STATES},
                    "waiting": waiting.get(library.name, 0),
                },
                # how new files are noticed: inotify events, or polling every scan.interval (and why)
                "watch": None if watch is None else _watch_view(watch),
                "space": {
                    "outputs": found.files,
                    "input_bytes": found.input_bytes,
                    "output_bytes": found.output_bytes,
                    "saved_bytes": found.input_bytes - found.output_bytes,
                },
                # what the rules did: sources published as they are, files skipped (as last planned),
                # and verified encodes that saved too little, by what larger_output did instead
                "rules": {
                    "copies": by_rules.copies,
                    "skips": skipped.get(library.name, 0),
                    "larger_output": {
                        then: by_rules.larger_output.get(then, 0) for then in decisions.LARGER_OUTPUT_THEN
                    },
                },
                # the last full pass (every folder listed) since the agent started: when, how long
                "last_full_pass": _full_pass_view(state.full_passes.get(library.name)),
            }
        )
    last = state.last_pass
    plan = (
        None
        if last is None
        else {
            "finished_at": stamp(last.finished_at),
            "seconds": round(last.seconds, 3),
            "counts": last.counts,
            "pending": last.pending,
        }
    )
    return web.json_response(
        {
            "version": context.version,
            "host": state.config.host.name,
            "leader": leader_view(state.store.leadership()),
            "started_at": stamp(context.started_at),
            "uptime_seconds": int((now - context.started_at).total_seconds()),
            "config_generation": state.config_generation,
            "reload_error": state.reload_error,
            "libraries": libraries,
            "plan": plan,
            "gate": gate_view(context),
            "running": encodes_view(context),
        }
    )


def _watch_view(watch: WatchStatus) -> dict[str, Any]:
    return {"mode": watch.mode, "reason": watch.reason, "folders": watch.folders}


def _full_pass_view(full_pass: FullPass | None) -> dict[str, Any] | None:
    return None if full_pass is None else {"at": full_pass.at, "seconds": round(full_pass.seconds, 3)}


@requires("user")
async def system(request: web.Request) -> web.Response:
    return web.json_response(system_view(context_of(request)))
