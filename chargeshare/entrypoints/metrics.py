"""Prometheus metrics for `serve` (prometheus-client), on a registry of the app's own.

Counters and histograms are fed as things happen (a frame answered, a unit of work done); what the
database knows (bookings by status, the payments outbox) and who is connected are read when scraped,
so a scrape always tells the present and nothing has to be kept in step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chargeshare.ocpp import VERSIONS

if TYPE_CHECKING:
    from chargeshare.bootstrap import App

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Acknowledgements are expected in milliseconds; the tail shows a slow disk or a stalled loop.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Present(Collector):
    """What is true at scrape time, read afresh each time."""

    def __init__(self, app: App, connected: Callable[[], Mapping[str, str]]) -> None:
        self.app, self.connected = app, connected

    def collect(self) -> Iterator[Metric]:
        by_version = GaugeMetricFamily(
            "chargeshare_chargers_connected",
            "Chargers with a live OCPP link, by version.",
            labels=["version"],
        )
        versions: dict[str, int] = dict.fromkeys(VERSIONS, 0)
        for version in self.connected().values():
            versions[version] = versions.get(version, 0) + 1
        for version, n in sorted(versions.items()):
            by_version.add_metric([version], n)
        yield by_version
        counts = self.app.queries.admin.status_counts()
        bookings, outbox = counts.bookings, counts.payment_steps
        booking_family = GaugeMetricFamily("chargeshare_bookings", "Bookings by status.", labels=["status"])
        for status, n in sorted(bookings.items()):
            booking_family.add_metric([status], n)
        yield booking_family
        steps = GaugeMetricFamily(
            "chargeshare_payment_steps",
            "Payment outbox steps by status (pending is the backlog, dead the dead letters).",
            labels=["status"],
        )
        for status in sorted({"pending", "done", "dead", *outbox}):
            steps.add_metric([status], outbox.get(status, 0))
        yield steps


class Metrics:
    def __init__(self, app: App, connected: Callable[[], Mapping[str, str]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames = Counter(
            "chargeshare_ocpp_frames",
            "OCPP calls from chargers, by action and outcome (result or error).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "chargeshare_ocpp_ack_seconds",
            "From a charger's call read to its answer sent (durable write included).",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.unit_of_work_seconds = Histogram(
            "chargeshare_unit_of_work_seconds",
            "Database units of work, begin to commit.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Present(app, connected))

    def answered(self, action: str, reply: str, began: float) -> None:
        """A call answered: `reply` is the frame sent (a CALLERROR starts with message type 4)."""
        self.ack_seconds.observe(time.perf_counter() - began)
        self.frames.labels(action, "error" if reply.startswith("[4") else "result").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
