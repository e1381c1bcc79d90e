"""Prometheus metrics, with prometheus-client.

Two kinds:
- Counted as they happen, since the agent started: encode seconds (a histogram by library and
  outcome), bytes read and written by encodes. The dispatcher reports each finished encode;
  the notifier (`agent.notify.notifier`) each notification's outcome.
- Read from the state at scrape time, so they are right even after a restart or a change
  made by `hb2r retry` from another process: jobs by state and library, the archive's input
  and output bytes and space saved by library, the gate, running encodes, the last scan; the
  hosts sharing the store (seen within 3 leases or late, seconds since each was last seen on
  the database's clock, each one's running jobs) and the planner's epoch by its host.

Each agent has its own registry (not prometheus-client's global one), so tests can run
several side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from agent.store import jobs
from agent.store.decisions import LARGER_OUTPUT_THEN, LibraryDecisions
from agent.store.ledger import LibraryBytes

if TYPE_CHECKING:
    from agent.store.protocol import Store

ENCODE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))


@dataclass(frozen=True)
class Snapshot:
    """What the collector needs from the running agent at scrape time."""

    libraries: tuple[str, ...]
    gate_reasons: tuple[str, ...]
    running_encodes: int
    suspended_encodes: int
    last_scan_seconds: float | None
    config_generation: int
    late_after_seconds: float = 90.0  # a host not seen for this long (3 leases) is late
    rule_skips: Mapping[str, int] = field(default_factory=dict)  # library -> files its rules skip


class Metrics:
    def __init__(self, *, store: Callable[[], Store], snapshot: Callable[[], Snapshot], version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.encode_seconds = Histogram(
            "hb2r_encode_seconds",
            "Wall-clock seconds of finished encodes, by library and outcome (done, failed, dead).",
            ["library", "outcome"],
            buckets=ENCODE_BUCKETS,
            registry=self.registry,
        )
        self.bytes_read = Counter(
            "hb2r_encode_read_bytes", "Source bytes read by finished encodes.", ["library"], registry=self.registry
        )
        self.bytes_written = Counter(
            "hb2r_encode_written_bytes",
            "Bytes written by encodes that were published.",
            ["library"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "hb2r_notifications",
            "Notifications by target (notify[i]), event and outcome: sent, retried (a try failed, another follows), "
            "failed (every try failed, or it could not wait), coalesced (held for a later 'and N more' message).",
            ["target", "event", "outcome"],
            registry=self.registry,
        )
        self.larger_outputs = Counter(
            "hb2r_larger_output",
            "Verified encodes that saved less than larger_output.min_saving, by library and what was done instead: "
            "copy (the source published), keep (the encode published anyway), skip (nothing published).",
            ["library", "then"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, snapshot, version))

    def job_finished(self, *, library: str, outcome: str, seconds: float, bytes_read: int, bytes_written: int) -> None:
        self.encode_seconds.labels(library, outcome).observe(seconds)
        self.bytes_read.labels(library).inc(bytes_read)
        if bytes_written:
            self.bytes_written.labels(library).inc(bytes_written)

    def larger_output(self, *, library: str, then: str) -> None:
        self.larger_outputs.labels(library, then).inc()

    def notification(self, *, target: str, event: str, outcome: str) -> None:
        self.notifications.labels(target, event, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector(Collector):
    def __init__(self, store: Callable[[], Store], snapshot: Callable[[], Snapshot], version: str) -> None:
        self._store = store
        self._snapshot = snapshot
        self._version = version

    def describe(self) -> list[Metric]:
        return []  # collected fresh each scrape; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        store = self._store()
        info = InfoMetricFamily("hb2r_build", "The running hb2r.")
        info.add_metric([], {"version": self._version})
        yield info

        by_state = GaugeMetricFamily(
            "hb2r_jobs", "Jobs in the queue's history, by library and state.", labels=["library", "state"]
        )
        counts = store.counts_by_library()
        for library in sorted(set(snapshot.libraries) | set(counts)):
            for state in jobs.JobState:
                by_state.add_metric([library, str(state)], counts.get(library, {}).get(str(state), 0))
        yield by_state

        sizes = store.bytes_by_library()
        outputs = GaugeMetricFamily(
            "hb2r_archive_outputs", "Transcodes in the archive, by library.", labels=["library"]
        )
        input_bytes = GaugeMetricFamily(
            "hb2r_archive_input_bytes", "Source bytes of the transcodes whose size is known.", labels=["library"]
        )
        output_bytes = GaugeMetricFamily(
            "hb2r_archive_output_bytes", "Bytes of the transcodes in the archive.", labels=["library"]
        )
        saved = GaugeMetricFamily(
            "hb2r_space_saved_bytes", "Source bytes minus transcode bytes, by library.", labels=["library"]
        )
        for library in sorted(set(snapshot.libraries) | set(sizes)):
            found = sizes.get(library, LibraryBytes(0, 0, 0))
            outputs.add_metric([library], found.files)
            input_bytes.add_metric([library], found.input_bytes)
            output_bytes.add_metric([library], found.output_bytes)
            saved.add_metric([library], found.input_bytes - found.output_bytes)
        yield from (outputs, input_bytes, output_bytes, saved)
        yield from _rule_metrics(store, snapshot)

        yield GaugeMetricFamily(
            "hb2r_gate_open",
            "1 when a waiting job may start, 0 when the gate holds jobs back.",
            value=0 if snapshot.gate_reasons else 1,
        )
        yield GaugeMetricFamily(
            "hb2r_gate_blocking_reasons", "How many limits hold jobs back now.", value=len(snapshot.gate_reasons)
        )
        yield GaugeMetricFamily("hb2r_running_encodes", "Encodes running now.", value=snapshot.running_encodes)
        yield GaugeMetricFamily(
            "hb2r_suspended_encodes", "Encodes suspended under memory pressure.", value=snapshot.suspended_encodes
        )
        if snapshot.last_scan_seconds is not None:
            yield GaugeMetricFamily(
                "hb2r_scan_duration_seconds", "Seconds the last reconcile pass took.", value=snapshot.last_scan_seconds
            )
        yield GaugeMetricFamily(
            "hb2r_config_generation", "Config generation in force (1 at start).", value=snapshot.config_generation
        )
        yield from _host_metrics(store, late_after_seconds=snapshot.late_after_seconds)


def _rule_metrics(store: Store, snapshot: Snapshot) -> Iterator[Metric]:
    """What the rules did per library, as the ledger records it (agent.store.decisions) and as the
    engine last planned it (a rule's skip records nothing): unlike hb2r_larger_output_total, which
    counts since this agent started, these hold across restarts and hosts."""
    decided = store.decisions_by_library()
    libraries = sorted(set(snapshot.libraries) | set(decided) | set(snapshot.rule_skips))
    copies = GaugeMetricFamily(
        "hb2r_rule_copies", "Sources a rule published as they are, by library.", labels=["library"]
    )
    skips = GaugeMetricFamily(
        "hb2r_rule_skips", "Files a rule skips (nothing published), by library, as last planned.", labels=["library"]
    )
    fallbacks = GaugeMetricFamily(
        "hb2r_larger_output_fallbacks",
        "Recorded encodes that saved less than larger_output.min_saving, by library and what was done instead.",
        labels=["library", "then"],
    )
    for library in libraries:
        found = decided.get(library, LibraryDecisions())
        copies.add_metric([library], found.copies)
        skips.add_metric([library], snapshot.rule_skips.get(library, 0))
        for then in LARGER_OUTPUT_THEN:
            fallbacks.add_metric([library, then], found.larger_output.get(then, 0))
    yield from (copies, skips, fallbacks)


def _host_metrics(store: Store, *, late_after_seconds: float) -> Iterator[Metric]:
    """The hosts sharing the store as they last reported (agent.store.hosts), and the planner's epoch."""
    seen = GaugeMetricFamily(
        "hb2r_hosts_seen", "1 for a host seen within 3 leases, 0 for one that is late.", labels=["host"]
    )
    last_seen = GaugeMetricFamily(
        "hb2r_host_last_seen_seconds", "Seconds since the host last reported (database clock).", labels=["host"]
    )
    running = GaugeMetricFamily("hb2r_host_running_jobs", "Jobs the host ran when it last reported.", labels=["host"])
    late = 0
    for host in store.list_hosts():
        is_late = host.seen_seconds_ago > late_after_seconds
        late += is_late
        seen.add_metric([host.name], 0 if is_late else 1)
        last_seen.add_metric([host.name], host.seen_seconds_ago)
        running.add_metric([host.name], host.running_jobs)
    yield from (seen, last_seen, running)
    yield GaugeMetricFamily("hb2r_hosts_late", "Hosts not seen for 3 leases.", value=late)
    epoch = GaugeMetricFamily(
        "hb2r_leader_epoch", "The planner's lease epoch, by the host holding it (none while free).", labels=["host"]
    )
    leader = store.leadership()
    if leader is not None:
        epoch.add_metric([leader.host], leader.epoch)
    yield epoch
