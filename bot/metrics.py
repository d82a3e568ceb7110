"""Prometheus metrics, one registry per application (tests build many apps in one process)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BatchHistogram(Collector):
    """A Prometheus histogram fed a batch of values at a time, from the event loop's thread.

    ``prometheus_client.Histogram`` takes two locks per observation; for a value per intake
    event (10,000 a second) that was a measurable share of the loop. Same exposition.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._doc = documentation
        self._upper = (*sorted(float(b) for b in buckets), math.inf)
        self._counts = [0] * len(self._upper)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def observe_many(self, values: Iterable[float]) -> None:
        upper, counts = self._upper, self._counts
        total = 0.0
        for v in values:
            counts[bisect.bisect_left(upper, v)] += 1  # a value on a bound belongs to it (le)
            total += v
        self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, running = [], 0
        for le, n in zip(self._upper, self._counts, strict=True):
            running += n
            cumulative.append(("+Inf" if math.isinf(le) else repr(le), running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=self._sum)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._doc)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "sopbot_events_received_total",
            "Inbound gateway events accepted, by platform and kind.",
            ["platform", "kind"],
            registry=r,
        )
        self.events_rejected = Counter(
            "sopbot_events_rejected_total",
            "Inbound frames rejected, by platform and reason.",
            ["platform", "reason"],
            registry=r,
        )
        self.messages_stored = Counter(
            "sopbot_messages_stored_total", "Messages written to the store (new ones).", registry=r
        )
        self.messages_duplicate = Counter(
            "sopbot_messages_duplicate_total",
            "Messages re-delivered and ignored because they were already stored.",
            registry=r,
        )
        self.messages_replayed = Counter(
            "sopbot_messages_replayed_total",
            "Stored messages whose handlers ran again from the store (after a crash between the"
            " intake's two transactions).",
            registry=r,
        )
        self.intake_handler_retries = Counter(
            "sopbot_intake_handler_retries_total",
            "Intake batches whose handler transaction failed and ran again after a reload.",
            registry=r,
        )
        self.connected_accounts = Gauge(
            "sopbot_connected_accounts",
            "Bot accounts currently online, by platform.",
            ["platform"],
            registry=r,
        )
        self.send_latency = Histogram(
            "sopbot_send_latency_seconds",
            "Time from handing an outbound message to the gateway to its acknowledgement.",
            ["platform"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.sends_failed = Counter(
            "sopbot_sends_failed_total", "Outbound sends that failed.", ["platform"], registry=r
        )
        self.intake_queue_depth = Gauge(
            "sopbot_intake_queue_depth", "Events waiting to be written.", registry=r
        )
        self.intake_commit_latency = BatchHistogram(
            "sopbot_intake_commit_seconds",
            "Time from receipt of an event to the commit of its batch.",
            (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.handler_errors = Counter(
            "sopbot_handler_errors_total", "Handler exceptions, by router.", ["router"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
