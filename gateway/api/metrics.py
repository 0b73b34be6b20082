"""GET /metrics: Prometheus text (prometheus-client) for operators and scrapers.

Public, like /health, on purpose: a scraper has no user token, and nothing here names a tenant
or carries data — only platform-wide counts. Restrict it at the network edge if even that is
too much.

Two kinds (docs/observability.md): the counters and histograms every process of this host
counts as it works (`nameko_services.metrics`, summed over the host's processes), and the
current state read at scrape time from the truth (PostgreSQL) and the broker (a passive
`queue_declare` per work queue): queue depths, executions by status, worker heartbeats.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from nameko_services import metrics
from nameko_services.broker import queue_depths, work_queues
from nameko_services.domain import concurrency, retention
from nameko_services.domain.states import ExecutionStatus

from ..app import ctx
from ..auth import PUBLIC, permission
from .openapi import produces

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)


class PlatformCollector(Collector):
    """The current state, read at scrape time: queue depths, executions by status, workers."""

    def __init__(self, engine, amqp_uri: str) -> None:
        self.engine = engine
        self.amqp_uri = amqp_uri

    def collect(self) -> Iterator[object]:
        yield from self._queues()
        yield from self._database()
        yield from self._concurrency()
        yield from self._pruned()

    def _queues(self) -> Iterator[object]:
        up = GaugeMetricFamily("attune_broker_up", "1 when the broker answered this scrape")
        ready = GaugeMetricFamily("attune_queue_messages_ready",
                                  "Messages waiting in a work queue", labels=["queue"])
        consumers = GaugeMetricFamily("attune_queue_consumers",
                                      "Consumers of a work queue", labels=["queue"])
        try:
            depths = queue_depths(self.amqp_uri, work_queues())
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: broker unavailable (%s)", type(exc).__name__)
            depths = {}
            up.add_metric([], 0)
        for queue, (count, consumer_count) in sorted(depths.items()):
            ready.add_metric([queue], count)
            consumers.add_metric([queue], consumer_count)
        yield from (up, ready, consumers)

    def _database(self) -> Iterator[object]:
        up = GaugeMetricFamily("attune_database_up", "1 when the database answered this scrape")
        by_status = GaugeMetricFamily("attune_executions", "Executions by status (all tenants)",
                                      labels=["status"])
        beats = GaugeMetricFamily("attune_worker_heartbeat_timestamp_seconds",
                                  "Last heartbeat of each worker (Unix time)",
                                  labels=["worker", "status"])
        ages = GaugeMetricFamily("attune_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat",
                                 labels=["worker", "status"])
        try:
            with self.engine.connect() as conn:
                counts = dict(conn.execute(text(
                    "SELECT status, count(*) FROM executions GROUP BY status")).all())
                workers = conn.execute(text(
                    "SELECT name, status, extract(epoch FROM heartbeat_at),"
                    " extract(epoch FROM now() - heartbeat_at) FROM workers ORDER BY name"
                )).all()
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            counts, workers = {}, []
            up.add_metric([], 0)
        for status in ExecutionStatus:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        for name, status, beat, age in workers:
            beats.add_metric([name, status], float(beat))
            ages.add_metric([name, status], max(float(age), 0.0))
        yield from (up, by_status, beats, ages)

    def _concurrency(self) -> Iterator[object]:
        """Executions held back by their action's concurrency policy, all tenants together
        (an action label would name tenants' packs on this public page)."""
        waiting = GaugeMetricFamily(
            "attune_executions_waiting_for_concurrency",
            "Executions waiting in scheduled for a concurrency slot (all tenants)")
        try:
            with self.engine.connect() as conn:
                waiting.add_metric([], concurrency.waiting_count(conn))
        except Exception as exc:  # attune_database_up already says so
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
        yield waiting

    def _pruned(self) -> Iterator[object]:
        """Rows the retention job and `attune prune` deleted so far, per table (monotone)."""
        family = CounterMetricFamily("attune_pruned_rows", "Rows pruned by retention so far",
                                     labels=["table"])
        try:
            with self.engine.connect() as conn:
                done = retention.totals(conn)
        except Exception as exc:  # attune_database_up already says so
            log.warning("metrics: pruned totals unavailable (%s)", type(exc).__name__)
            return
        for table in retention.TABLES:
            family.add_metric([table], done.get(table, 0))
        yield family


@bp.get("/metrics")
@permission(PUBLIC)
@produces("text/plain")
def scrape() -> Response:
    """Prometheus text exposition of the platform's state."""
    gateway = ctx()
    registry = metrics.exposition(PlatformCollector(gateway.engine, gateway.settings.amqp_uri))
    return Response(generate_latest(registry), mimetype=None,
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
