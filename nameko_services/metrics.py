"""The platform's Prometheus metrics, defined once for every process (docs/observability.md).

Counters, histograms and live gauges are counted where the work already happens (the worker
that ends a run, the gateway that answers a request, the sensor that stores an event): an
increment is a few microseconds of memory, no statement and no message.

`attune up` gives every process of a host one folder, `<run_dir>/metrics`
(`PROMETHEUS_MULTIPROC_DIR`, emptied when the host's platform starts): prometheus-client's
multiprocess mode writes each process's values to its own files there, and `exposition()`
sums them, so a counter stays monotone across several processes, replicas and restarts. It
must be set before prometheus-client is imported, which is why only `attune up` sets it; a
process started without it (tests, `nameko run` by hand) counts in its own memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "unknown"

_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Worker: one observation of each per run it ends.
EXECUTIONS_FINISHED = Counter(
    "attune_executions_finished_total",
    "Runs a worker ended, by terminal status and runner", ["status", "runner"])
EXECUTION_DURATION = Histogram(
    "attune_execution_duration_seconds",
    "Seconds from a worker's claim to the run's end (environment, sandbox and action)",
    ["runner"], buckets=_DURATION_BUCKETS)
EXECUTION_QUEUE = Histogram(
    "attune_execution_queue_seconds",
    "Seconds an execution waited between scheduled and started (claimed by a worker)",
    buckets=_QUEUE_BUCKETS)

# Gateway and sensor.
WEBHOOKS = Counter("attune_webhooks_total", "Webhook calls answered, by outcome", ["outcome"])
EVENTS = Counter("attune_events_total", "Events stored, by source (webhook, timer, sensor)",
                 ["source"])
RATE_LIMITED = Counter("attune_rate_limited_total", "Requests refused 429 by a rate limit",
                       ["bucket"])
HTTP_REQUESTS = Counter(
    "attune_http_requests_total", "HTTP requests answered by the gateway",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "attune_http_request_duration_seconds", "Seconds the gateway took to answer, by route",
    ["method", "route"], buckets=_HTTP_BUCKETS)
WS_CLIENTS = Gauge("attune_ws_clients", "WebSocket clients connected now",
                   multiprocess_mode="livesum")
WS_DROPPED = Counter("attune_ws_dropped_total",
                     "Notifications dropped for WebSocket clients that read too slowly")

# Every publishing service (domain/presence.py).
NEWS_UNWATCHED = Counter(
    "attune_news_unwatched_total",
    "Live news not published because no gateway announced a listener for its tenant",
    ["event"])


def multiproc_dir() -> Path | None:
    """The host's shared folder of values, when this process was started with one."""
    folder = os.environ.get(MULTIPROC_VARIABLE)
    return Path(folder) if folder else None


def version() -> str:
    """The installed Attune's version (attune_build_info)."""
    try:
        return metadata.version("attune")
    except metadata.PackageNotFoundError:
        return UNKNOWN


def exposition(*collectors: Collector) -> CollectorRegistry:
    """A registry of this host's metrics (every process's, summed, in multiprocess mode), the
    answering process's `process_*`, `attune_build_info` and the given scrape-time collectors."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiproc_dir()
    if folder is not None:
        multiprocess.MultiProcessCollector(registry, path=str(folder))
        ProcessCollector(registry=registry)
    else:
        registry.register(_Forward(REGISTRY))  # this process's counters, process_* included
    registry.register(_BuildInfo())
    for collector in collectors:
        registry.register(collector)
    return registry


def serve_host(address: str, port: int) -> None:
    """Serve this host's metrics at http://address:port/metrics from a daemon thread (the
    supervisor of a host without a gateway: docs/observability.md)."""
    start_http_server(port, addr=address, registry=exposition())


def process_ended(pid: int) -> None:
    """Forget the live gauges (attune_ws_clients) of a process of this host that ended; what it
    counted stays in the sums, so counters never go back."""
    folder = multiproc_dir()
    if folder is not None:
        multiprocess.mark_process_dead(pid, str(folder))


def reset(folder: Path) -> None:
    """Empty a host's folder before its platform starts (no process of it runs any more)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


class _Forward(Collector):
    """Lends another collector (or registry) to a registry without registering it twice."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


class _BuildInfo(Collector):
    """attune_build_info{version} 1 (computed, so it writes nothing to the shared folder)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("attune_build_info", "1, labelled with the running version",
                                   labels=["version"])
        family.add_metric([version()], 1)
        yield family
