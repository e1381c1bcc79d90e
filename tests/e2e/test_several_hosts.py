"""Issue 11's end-to-end test: three `hb2r run` hosts on one PostgreSQL, broken the ways hosts break.

Each host has its own network namespace, state folder and bind mount of the one library
(tests/support/multihost.py); the store's lease is 3 s. The faults run one after another in ONE run, not
one test each: they are what a week of a real cluster looks like (a host dies while another is
frozen's successor is still catching up, a link drops while jobs are being re-claimed), the
invariants must hold across all of them together, and one run pays the cluster, the clips and
three agents' start-up once (the whole test stays well under three minutes). Each fault waits,
with a deadline, for what must follow it before the next one, so a failure names the fault.

1. mini starts with its library mount missing (the mount point there, empty: a dropped share):
   it must claim nothing from it and spend no attempt; it is remounted after the other faults.
2. SIGKILL of a host mid-encode (`crash`: the agent and its HandBrakeCLI): its job runs elsewhere.
3. SIGSTOP of the leader's whole namespace past its lease: another host leads under a higher
   epoch; after SIGCONT the former leader follows and its lost encode publishes nothing.
4. A host's link cut mid-encode past its lease: its job runs elsewhere; restored, it carries on.
Then every source must end with exactly one verified output, one ledger row, no job dead, no
job ever under two live leases (the store's audit and the hosts' logged claims), epochs only
rising, no temp file left once the hosts stop cleanly, and the sources byte-identical.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tests.support.clips import make_clip
from tests.support.multihost import Host, Network, SharedStore, events_of
from tests.support.multihost_checks import (
    CLAIMED,
    LEADER,
    claim_problems,
    double_leases,
    leader_audit_problems,
    leader_epoch_problems,
    lease_spans,
    ledger_problems,
    logged_claims,
    output_problems,
    temp_files,
)
from tests.support.outcomes import checksums
from tests.support.waiting import wait_for

LEASE = "3s"  # the issue's: every fault below lasts until a lease has run out
CLIPS = 8
CLIP_SECONDS = 24  # 640x360: a few seconds of HandBrakeCLI each, so faults land mid-encode


class Held(NamedTuple):
    job: int
    fence: int


def encoding_on(store: SharedStore, archive: Path, host: str) -> Held | None:
    """A job host holds and is encoding now: its row running under host's lease, its temp file
    (named with host, job and fence) written, HandBrakeCLI past its first progress report."""
    rows = store.rows(
        "SELECT id, lease_token FROM jobs WHERE state = 'running' AND host = %s AND progress > 0", (host,)
    )
    partial = archive / ".hb2r-partial"
    names = [path.name for path in partial.iterdir()] if partial.is_dir() else []
    for job, fence in rows:
        if any(name.startswith(f"{host}-") and Path(name).stem.endswith(f"-{job}-{fence}") for name in names):
            return Held(int(job), int(fence))
    return None


def claimed_again(hosts: list[Host], held: Held, *, lost: str) -> bool:
    """Whether another host logged a claim of held's job under a newer fence."""
    return any(
        entry["job"] == held.job and entry["host"] != lost and int(entry["fence"]) > held.fence
        for entry in events_of(hosts)
        if entry.get("event") == CLAIMED
    )


def lost_here(host: Host, held: Held) -> bool:
    """Whether host learnt that its lease on held's job was gone (and threw its encode away)."""
    return any(
        entry.get("job") == held.job for entry in host.events() if str(entry.get("event")).startswith("job lost")
    )


def leaders(hosts: list[Host]) -> list[tuple[int, str]]:
    return sorted(
        (int(entry["epoch"]), str(entry["host"])) for entry in events_of(hosts) if entry.get("event") == LEADER
    )


def states(store: SharedStore) -> dict[str, int]:
    return dict(store.rows("SELECT state, count(*) FROM jobs GROUP BY state"))  # type: ignore[arg-type]


def test_three_hosts_survive_a_crash_a_frozen_leader_a_cut_link_and_a_missing_mount(
    network: Network, hosts: Callable[..., Host], shared_store: SharedStore, tmp_path: Path
) -> None:
    library, archive = tmp_path / "library", tmp_path / "archive"
    sources = [f"Show/E{number:02}.mkv" for number in range(1, CLIPS + 1)]
    for source in sources:
        make_clip(library / source, seconds=CLIP_SECONDS, size="640x360")
    before = checksums(library)
    nas, desktop, mini = (hosts(name, lease=LEASE) for name in ("nas1", "desktop", "mini"))
    everyone = [nas, desktop, mini]

    nas.start()
    wait_for(lambda: leaders([nas]), what="nas1 leading", deadline=60)
    mini.unmount()  # 1. before it starts: its library folder is an empty mount point
    desktop.start()
    mini.start()
    for host in everyone:
        host.wait_healthy(accept=("healthy", "degraded"))

    # 2. a host dies mid-encode: its job is taken back and runs on another host
    victim = wait_for(lambda: encoding_on(shared_store, archive, "desktop"), what="desktop encoding", deadline=60)
    assert isinstance(victim, Held)
    desktop.crash()
    wait_for(lambda: claimed_again(everyone, victim, lost="desktop"), what=f"{victim} claimed again", deadline=30)
    desktop.start()

    # 3. the leader frozen past its lease, mid-encode: another host leads under a higher epoch and
    # claims its job; thawed, the former leader learns both and publishes nothing of that encode
    frozen = wait_for(lambda: encoding_on(shared_store, archive, "nas1"), what="nas1 encoding", deadline=60)
    assert isinstance(frozen, Held)
    nas.signal_all(signal.SIGSTOP)
    try:
        wait_for(lambda: [lead for lead in leaders(everyone) if lead[1] != "nas1"], what="a new leader", deadline=30)
        wait_for(lambda: claimed_again(everyone, frozen, lost="nas1"), what=f"{frozen} claimed again", deadline=30)
    finally:
        nas.signal_all(signal.SIGCONT)
    wait_for(
        lambda: [entry for entry in nas.events() if str(entry.get("event", "")).startswith("leadership lost")],
        what="nas1 learning it no longer leads",
        deadline=30,
    )
    wait_for(lambda: lost_here(nas, frozen), what=f"nas1 learning it lost {frozen}", deadline=30)

    # 4. a host's link cut mid-encode past its lease: its job runs elsewhere; restored, it carries on
    def anyone_encoding() -> tuple[Host, Held] | None:
        for host in (nas, desktop):
            if (held := encoding_on(shared_store, archive, host.name)) is not None:
                return host, held
        return None

    found = wait_for(anyone_encoding, what="a host encoding", deadline=60)
    assert isinstance(found, tuple)
    cut_host, cut_job = found
    network.cut(cut_host.name)
    try:
        wait_for(
            lambda: claimed_again(everyone, cut_job, lost=cut_host.name), what=f"{cut_job} claimed again", deadline=30
        )
    finally:
        network.restore(cut_host.name)
    wait_for(lambda: lost_here(cut_host, cut_job), what=f"{cut_host.name} learning it lost {cut_job}", deadline=30)

    # 1, continued: mini claimed nothing while its mount was gone; then it comes back
    assert [entry for entry in mini.events(CLAIMED)] == [], "mini claimed a job from a library it cannot see"
    mini.remount()

    def all_done() -> bool:
        found = states(shared_store)
        assert not found.get("dead"), shared_store.rows("SELECT id, rel_path, error FROM jobs WHERE state = 'dead'")
        return found == {"done": CLIPS}

    wait_for(all_done, what=f"every job done ({states(shared_store)})", deadline=120)
    for host in everyone:
        assert host.running(), f"{host.name} exited:\n{host.log_tail()}"
    for host in everyone:
        assert host.stop() == 0, host.log_tail()

    audit = shared_store.audit()
    spans = lease_spans(audit)
    entries = events_of(everyone)
    assert double_leases(spans) == []
    assert claim_problems(logged_claims(entries), spans) == []
    assert leader_audit_problems(audit) == []
    assert leader_epoch_problems(entries) == []
    assert len({host for _, host in leaders(everyone)}) >= 2  # the lead did move
    assert output_problems(library=library, archive=archive) == []
    published = Counter(entry["job"] for entry in entries if entry.get("event") == "job published")
    assert sorted(published.values()) == [1] * CLIPS, published  # each source encoded to the end once
    assert (
        ledger_problems(shared_store.rows("SELECT library, rel_path FROM ledger"), library_name="tv", sources=sources)
        == []
    )
    assert temp_files(archive) == []
    assert checksums(library) == before
    # the job mini could not see, and those lost with a host, spent no attempt of their own
    assert shared_store.rows("SELECT id, attempts FROM jobs WHERE attempts > 0") == []
