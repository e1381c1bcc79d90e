"""The agent's side of "one planner at a time": keep the leader lease, run passes only while it holds.

Every agent, on SQLite or PostgreSQL, renews (or tries to take) the planner's lease every
lease/3 on a timer of its own (`agent.runtime`), not only when a pass is due: a pass every
`scan.interval` (60 s by default) is far rarer than a 30 s lease needs. The store does the
deciding (`agent.store.leader`); this module remembers what it said and logs each change once:
- `PlannerLease.renew()` asks the store; a host that takes the lease logs "leadership taken"
  with its epoch, one that finds it held elsewhere (or lost) is a follower and logs so once.
- `lead_pass()` runs the reconcile pass through the store's fenced view when this host
  leads, and does nothing when it follows. A pass whose write is refused (NotLeader: another
  host took over while this one was paused or cut off) stops there, having written nothing
  more; this host becomes a follower until its next renewal says otherwise.
- A follower still serves /health, /metrics, the API and the page from the shared store, and
  its dispatcher still encodes the jobs it claims.
On SQLite (one host by its state folder's lock) the agent takes the lease at start and keeps it.
A store that cannot be reached when renewing changes nothing here: the lease runs out on the
database's clock by itself, and the fence refuses the pass's writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agent.engine import AgentState, PassSummary, forget_another_lead, reconcile
from agent.store.leader import Leadership, NotLeader
from agent.store.protocol import Store


class PlannerLease:
    """What this host last learned about the planner's lease."""

    def __init__(self, *, host: str, lease: timedelta, log: Any) -> None:
        self.host = host
        self.lease = lease
        self.log = log
        self.held: Leadership | None = None
        self._following: str | None = None  # the leader last logged as followed

    @property
    def renew_every(self) -> timedelta:
        return self.lease / 3

    def renew(self, store: Store) -> Leadership | None:
        """Renew or take the lease; return it while this host leads, None while it follows."""
        taken = store.take_or_renew_leadership(self.host, lease=self.lease)
        if taken is not None:
            if self.held is None or self.held.epoch != taken.epoch:
                self.log.info("leadership taken: this host plans", host=self.host, epoch=taken.epoch)
            self._following = None
            self.held = taken
            return taken
        if self.held is not None:
            self.log.warning("leadership lost: another host plans", host=self.host, epoch=self.held.epoch)
        self.held = None
        leader = store.leadership()
        who = None if leader is None else f"{leader.host}@{leader.epoch}"
        if who != self._following:
            self._following = who
            if leader is not None:
                self.log.info("following the leader", leader=leader.host, epoch=leader.epoch)
        return None

    def lost(self, reason: str) -> None:
        """Forget the lease: a fenced write said this host no longer leads."""
        if self.held is not None:
            self.log.warning("leadership lost: the pass stopped, nothing more written", reason=reason)
        self.held = None

    def resign(self, store: Store) -> None:
        """Give the lease up now (a clean stop), so another host need not wait for it to run out."""
        if self.held is not None:
            store.resign(self.held.host, self.held.epoch)
            self.log.info("leadership given up", host=self.host, epoch=self.held.epoch)
            self.held = None


async def lead_pass(state: AgentState, lease: PlannerLease, *, log: Any) -> PassSummary | None:
    """Run the reconcile pass if this host leads, every write fenced by its epoch; return its summary.

    Return None if this host follows, or if the pass stopped because another host took over.
    """
    held = lease.held
    if held is None:
        return None
    forget_another_lead(state, held.epoch)
    try:
        return await reconcile(state, log=log, store=state.store.fenced(held))
    except NotLeader as error:
        lease.lost(str(error))
        log.warning("reconcile pass stopped: this host no longer leads", reason=str(error))
        return None
