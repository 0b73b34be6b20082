"""Shared nameko extensions: database and settings dependencies, event dispatch, and the
AMQP entrypoints (`rpc`, `event_handler`) every service uses instead of nameko's own."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from typing import Any, NamedTuple

import eventlet
from kombu import Queue
from kombu.exceptions import OperationalError as BrokerUnavailable
from nameko import events, messaging
from nameko import rpc as nameko_rpc
from nameko.events import get_event_exchange
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, SharedExtension
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from . import logs, tracing
from .domain import backlog, messages, pack_store, presence
from .domain.crypto import Cipher
from .domain.db import make_engine
from .domain.settings import Settings


class Platform:
    """What a service worker gets: settings, the pooled engine and the cipher."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.cipher = Cipher(settings.encryption_keys, settings.active_key_id)


class PlatformProvider(DependencyProvider):
    """One engine per container (pool sized to max_workers), built from the container config."""

    def setup(self) -> None:
        config: dict[str, Any] = self.container.config
        settings = Settings.from_mapping(config)
        pool = int(config.get("max_workers", 10)) + 2
        self.platform = Platform(settings, make_engine(settings.database_url, pool_size=pool))

    def stop(self) -> None:
        self.platform.engine.dispose()

    def kill(self) -> None:
        self.platform.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> Platform:
        return self.platform


class MessageContext(DependencyProvider):
    """What a worker of this service does is told in the context of the message it handles:
    its log records carry the service's name and the message's ids (`execution_id`,
    `tenant_id`, `event_id`, `trace_id`: logs.py), and its spans continue the span that sent
    the message (tracing.py, when ATTUNE.tracing.otlp_endpoint is set)."""

    def setup(self) -> None:
        logs.set_service(self.container.service_name)
        tracing.configure(self.container.config, self.container.service_name)

    def stop(self) -> None:
        tracing.shutdown()

    def kill(self) -> None:
        tracing.shutdown()

    def worker_setup(self, worker_ctx: Any) -> None:
        payload = worker_ctx.args[0] if worker_ctx.args else None
        fields = logs.context_of(payload)
        if fields:
            scope = contextlib.ExitStack()
            scope.enter_context(logs.bound(**fields))
            scope.enter_context(tracing.continued(payload))
            self._scopes[worker_ctx] = scope

    def worker_teardown(self, worker_ctx: Any) -> None:
        scope = self._scopes.pop(worker_ctx, None)
        if scope is not None:
            scope.close()

    @functools.cached_property
    def _scopes(self) -> dict[Any, contextlib.ExitStack]:
        return {}


log = logging.getLogger(__name__)

# Errors that mean "PostgreSQL or RabbitMQ is unreachable right now", not "this message is bad".
OUTAGE_ERRORS = (DatabaseUnavailable, BrokerUnavailable)
OUTAGE_RETRY_SECONDS = 1.0


class QueueConsumer(messaging.QueueConsumer):
    """nameko's consumer, except that acking on a connection the broker just dropped is a no-op.

    nameko 2.14.1 ignores only amqp's ConnectionError there: a socket error (ECONNRESET while
    RabbitMQ restarts) escapes the worker thread and kills the whole service. The broker has
    already taken the unacknowledged message back and redelivers it; handlers are idempotent.
    """

    def ack_message(self, message: Any) -> None:
        try:
            super().ack_message(message)
        except OSError as exc:
            log.warning("ack lost with the broker connection (%s); it will be redelivered", exc)

    def requeue_message(self, message: Any) -> None:
        try:
            super().requeue_message(message)
        except OSError as exc:
            log.warning("requeue lost with the broker connection (%s); the broker has it", exc)


class ListenerTable(SharedExtension):
    """This process's presence.Listeners, fed by the gateways' LISTENERS_PRESENT broadcasts
    through nameko's queue consumer, on a queue of its own (exclusive: deleted with the
    connection, declared again on reconnecting). With `ATTUNE.news.publish_unwatched` it
    consumes nothing and everyone is listening."""

    queue_consumer = QueueConsumer()

    def setup(self) -> None:
        config = self.container.config
        news = presence.from_config(config)
        self.table = None if news.publish_unwatched else presence.Listeners(news.interval_seconds)
        if self.table is None:
            return
        self.queue = Queue(
            f"{messages.LISTENERS_PRESENT}--{self.container.service_name}-{uuid.uuid4().hex}",
            exchange=get_event_exchange(messages.GATEWAY, config),
            routing_key=messages.LISTENERS_PRESENT, exclusive=True, auto_delete=True)
        self.queue_consumer.register_provider(self)

    def stop(self) -> None:
        if self.table is not None:
            self.queue_consumer.unregister_provider(self)

    def handle_message(self, body: Any, message: Any) -> None:
        """One announcement (nameko's consumer calls this with the decoded body)."""
        if isinstance(body, dict):  # registered only with a table (setup)
            self.table.heard(body)
        self.queue_consumer.ack_message(message)

    def listening(self, tenant_id: Any) -> bool:
        """Is this tenant's live news listened to (domain/presence.py)?"""
        return self.table is None or self.table.listening(tenant_id)


class Listening(DependencyProvider):
    """`listening(tenant_id)`: is the tenant's live news listened to now (ListenerTable)?"""

    listeners = ListenerTable()

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.listeners.listening


class Dispatcher(DependencyProvider):
    """Publish events after commit: `dispatch(event_type, payload, source=None)`.

    `source` names the exchange (`<source>.events`); it defaults to the service's own name.
    Execution news goes through the shared `executions` source so every consumer sees one
    ordered stream, whichever service made the transition. A tenant's live news that no
    gateway announced a listener for is not published (ListenerTable).
    """

    listeners = ListenerTable()

    def setup(self) -> None:
        from .green import Publisher

        self._publish = Publisher(self.container.config, listening=self.listeners.listening)

    def get_dependency(self, worker_ctx: Any):
        service_name = self.container.service_name
        publish = self._publish

        def dispatch(event_type: str, payload: dict[str, Any], source: str | None = None) -> None:
            publish(source or service_name, event_type, payload)

        return dispatch


class RpcConsumer(nameko_rpc.RpcConsumer):
    queue_consumer = QueueConsumer()


class Rpc(nameko_rpc.Rpc):
    """nameko's RPC entrypoint on the tolerant queue consumer."""

    rpc_consumer = RpcConsumer()


class EventHandler(events.EventHandler):
    """nameko's event handler on the tolerant queue consumer; an outage is retried, not dropped.

    nameko acks a message whose handler raised. When the cause was PostgreSQL or RabbitMQ
    being unreachable (a restart, say), the message goes back to the queue after a pause
    instead, so the work happens once they are back rather than at the next recovery sweep.

    `prioritised=True` declares the queue as a RabbitMQ priority queue (x-max-priority
    backlog.MAX_PRIORITY) for work messages, which carry their tenant's priority
    (messages.PRIORITISED). Changing it on an existing queue needs the queue deleted first
    (CHANGELOG: the broker refuses to redeclare a queue with other arguments).
    """

    queue_consumer = QueueConsumer()

    def __init__(self, *args: Any, prioritised: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prioritised = prioritised

    def setup(self) -> None:
        super().setup()
        if self.prioritised:
            self.queue.queue_arguments = {"x-max-priority": backlog.MAX_PRIORITY}

    def handle_message_processed(self, message: Any, result: Any = None,
                                 exc_info: Any = None) -> None:
        if exc_info is not None and isinstance(exc_info[1], OUTAGE_ERRORS):
            eventlet.sleep(OUTAGE_RETRY_SECONDS)
            self.queue_consumer.requeue_message(message)
            return
        super().handle_message_processed(message, result, exc_info)


rpc = Rpc.decorator
event_handler = EventHandler.decorator


class Delivery(NamedTuple):
    """One message of a batch: the service and event type it came as, and its payload."""

    source_service: str
    event_type: str
    payload: Any


class _Batch:
    """The messages waiting for one batch method, in arrival order, and whether it runs."""

    def __init__(self) -> None:
        self.pending: list[tuple[BatchEventHandler, Any, Any]] = []
        self.running = False


class _Batches(SharedExtension):
    """A container's batches, one per batch method (shared by the entrypoints on it)."""

    def setup(self) -> None:
        self.by_method: dict[str, _Batch] = {}

    def of(self, method_name: str) -> _Batch:
        return self.by_method.setdefault(method_name, _Batch())


class BatchEventHandler(EventHandler):
    """An event handler whose method gets a list of `Delivery`: the messages that arrived while
    the previous batch was being handled (at most `max_batch`; the prefetch bounds it too).

    The batch entrypoints stacked on one method share its batch: their messages are handed over
    in the order they arrived, one batch at a time, so news about one entity that comes through
    several queues stays in order. Idle, a batch is one message and nothing waits; under load
    one worker, one transaction and one acknowledgement round cover many messages. The batch's
    messages are acknowledged (or, on an outage, requeued) together once the method returns;
    it must be idempotent per payload, as every handler here is.
    """

    batches = _Batches()

    def __init__(self, source_service: str, event_type: str, max_batch: int = 50,
                 **kwargs: Any) -> None:
        super().__init__(source_service, event_type, **kwargs)
        self.max_batch = max_batch

    def handle_message(self, body: Any, message: Any) -> None:
        batch = self.batches.of(self.method_name)
        batch.pending.append((self, body, message))
        if not batch.running:
            self._spawn_batch(batch)

    def _spawn_batch(self, batch: _Batch) -> None:
        taken, batch.pending = batch.pending[:self.max_batch], batch.pending[self.max_batch:]
        batch.running = True
        try:
            self.container.spawn_worker(
                self, ([Delivery(handler.source_service, handler.event_type, body)
                        for handler, body, _ in taken],), {},
                context_data=self.unpack_message_headers(taken[0][2]),
                handle_result=functools.partial(self._handle_batch_result, batch, taken),
            )
        except ContainerBeingKilled:
            batch.running = False
            for _, _, message in [*taken, *batch.pending]:
                self.queue_consumer.requeue_message(message)
            batch.pending = []

    def _handle_batch_result(self, batch: _Batch, taken: list[tuple[Any, Any, Any]],
                             worker_ctx: Any, result: Any = None,
                             exc_info: Any = None) -> tuple[Any, Any]:
        if exc_info is not None and isinstance(exc_info[1], OUTAGE_ERRORS):
            eventlet.sleep(OUTAGE_RETRY_SECONDS)  # once for the batch, as EventHandler does
            for _, _, message in taken:
                self.queue_consumer.requeue_message(message)
        else:
            for handler, _, message in taken:
                super(EventHandler, handler).handle_message_processed(message, result, exc_info)
        batch.running = False
        if batch.pending:
            self._spawn_batch(batch)
        return result, exc_info


batch_event_handler = BatchEventHandler.decorator


class DrainingEventHandler(EventHandler):
    """An event handler that takes nothing new once its container starts stopping.

    nameko cancels the AMQP consumer when the container stops, but a message delivered in the
    moment before the cancel would still start a new worker. Here such a message goes straight
    back to the queue (for another consumer), while the handlers already running finish.
    """

    def setup(self) -> None:
        super().setup()
        self.draining = False

    def stop(self) -> None:
        self.draining = True
        super().stop()

    def handle_message(self, body: Any, message: Any) -> None:
        if self.draining:
            self.queue_consumer.requeue_message(message)
            return
        super().handle_message(body, message)


draining_event_handler = DrainingEventHandler.decorator


class PackCachePruner(DependencyProvider):
    """Prunes this host's pack cache (domain/pack_store.py: folders of pack versions no pack
    points at any more) at start-up and every PRUNE_SECONDS, in a managed thread; every
    process on the host that runs pack code (worker, sensor) has one."""

    PRUNE_SECONDS = 600.0

    def setup(self) -> None:
        self._stop = threading.Event()

    def start(self) -> None:
        provider = next(
            d for d in self.container.dependencies if isinstance(d, PlatformProvider)
        )
        self._platform = provider.platform
        self.container.spawn_managed_thread(self._loop, identifier="pack-cache-pruner")

    def stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        settings = self._platform.settings
        while not self._stop.is_set():
            try:
                pack_store.prune(self._platform.engine, pack_store.cache_root(settings),
                                 unused_s=pack_store.unused_grace(settings))
            except Exception:  # the database may be briefly away: the next round retries
                log.exception("pruning the pack cache failed")
            self._stop.wait(self.PRUNE_SECONDS)

    def get_dependency(self, worker_ctx: Any) -> None:
        return None
