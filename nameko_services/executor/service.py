"""ExecutorService: entrypoints only; the logic lives in the room's modules."""

from __future__ import annotations

from typing import Any

from nameko.events import BROADCAST
from nameko.timer import timer

from ..domain import executions, messages
from ..extensions import (
    Delivery,
    Dispatcher,
    MessageContext,
    PlatformProvider,
    batch_event_handler,
    event_handler,
    rpc,
)
from ..tracing import PARENT_SPAN_ID
from . import (
    concurrency,
    due,
    enforcement,
    engines,
    inquiry,
    operator,
    parents,
    recovery,
    retry,
    scheduling,
    with_items,
    workers,
    workflow,
)
from .retention import RetentionJob
from .timer_extensions import TimerWheel, timer_due

# An eager timer with this interval fires once, at start-up (it would next fire in ~30 years).
AT_START_UP_ONLY = 10**9
# The engines of executions the executor runs itself, in the order `scheduling.plan` asks them:
# a with-items parent (not an item) fans out first, its items may retry, an attempt may be a
# workflow or an inquiry.
engines.register(with_items.ENGINE, retry.ENGINE, workflow.ENGINE, inquiry.ENGINE)
SWEEP_INTERVAL_SECONDS = 60


class ExecutorService:
    """Turns events into enforcements and executions, schedules them, and runs what no worker
    runs: workflows, with-items fan-out, retries, inquiries and their durable timers; and
    prunes old history (ATTUNE.retention)."""

    name = "executor"

    platform = PlatformProvider()
    context = MessageContext()  # logs and spans in the context of the message handled
    dispatch = Dispatcher()
    timer_wheel = TimerWheel()
    retention = RetentionJob()

    @batch_event_handler(messages.GATEWAY, messages.EVENT_CREATED, prioritised=True)
    @batch_event_handler(messages.SENSOR, messages.EVENT_CREATED, prioritised=True)
    def on_event_created(self, batch: list[Delivery]) -> None:
        """Evaluate each event's rules once (a redelivered event finds it processed); the
        events that arrived together share one transaction."""
        payloads = [delivery.payload for delivery in batch]
        enforcement.handle_events(
            self.platform.engine, self.platform.cipher, self.dispatch,
            [(payload["event_id"], payload["tenant_id"]) for payload in payloads],
            max_chain_depth=self.platform.settings.max_chain_depth,
            parents={p["event_id"]: p[PARENT_SPAN_ID] for p in payloads if PARENT_SPAN_ID in p},
        )

    @event_handler(messages.GATEWAY, messages.EXECUTION_REQUESTED, prioritised=True)
    def on_execution_requested(self, payload: dict[str, Any]) -> None:
        """A user asked for an execution: schedule it (or fan it out, or fail it)."""
        scheduling.schedule_and_send(
            self.platform.engine, self.platform.cipher, self.dispatch,
            payload["execution_id"], payload["tenant_id"],
        )

    @event_handler(messages.EXECUTIONS, messages.EXECUTION_FOLLOW_UP)
    def on_execution_follow_up(self, payload: dict[str, Any]) -> None:
        """A child ended, paused or resumed: its workflow / with-items / retry parent moves on;
        a limited execution ended: the next one waiting for its slot goes; an end that fired
        execution triggers has their events evaluated (once: claimed)."""
        parents.on_execution_news(
            self.platform.engine, self.platform.cipher, self.dispatch, payload
        )
        if executions.frees_concurrency_slot(payload):  # hook: concurrency policy (issue 20)
            concurrency.release(self.platform.engine, self.dispatch, payload)
        if payload.get("events"):  # execution triggers (issue 20)
            enforcement.on_execution_ended(
                self.platform.engine, self.platform.cipher, self.dispatch, payload["tenant_id"],
                payload["events"], max_chain_depth=self.platform.settings.max_chain_depth,
            )

    @event_handler(messages.GATEWAY, messages.EXECUTION_CANCEL_REQUESTED)
    def on_execution_cancel_requested(self, payload: dict[str, Any]) -> None:
        """Cancel of an execution the executor runs: cancel its unfinished children."""
        parents.refresh(
            self.platform.engine, self.platform.cipher, self.dispatch,
            payload["execution_id"], payload["tenant_id"],
        )

    @event_handler(messages.GATEWAY, messages.INQUIRY_RESPONDED)
    def on_inquiry_responded(self, payload: dict[str, Any]) -> None:
        """An answer was stored: the paused execution resumes with it."""
        inquiry.resume(
            self.platform.engine, self.dispatch, payload["inquiry_id"], payload["tenant_id"]
        )

    @timer_due
    def on_timer_due(self, timer_id: int) -> None:
        """A durable timer is due: next retry attempt, workflow timeout or inquiry expiry."""
        due.fire(self.platform.engine, self.platform.cipher, self.dispatch, timer_id)

    @event_handler(messages.EXECUTOR, messages.TIMER_SCHEDULED, handler_type=BROADCAST,
                   reliable_delivery=False)
    def on_timer_scheduled(self, payload: dict[str, Any]) -> None:
        """Some executor inserted a timer: this process's timer loop re-reads the earliest."""
        self.timer_wheel.wake()

    @timer(interval=AT_START_UP_ONLY, eager=True)
    def resume(self) -> None:
        """Start-up: resume everything the database says is unfinished."""
        recovery.resume(self.platform.engine, self.platform.cipher, self.dispatch)

    @timer(interval=SWEEP_INTERVAL_SECONDS)
    def sweep(self) -> None:
        """Safety net for lost messages (e.g. a publisher that crashed after its commit)."""
        recovery.sweep(self.platform.engine, self.platform.cipher, self.dispatch)

    @timer(interval=workers.CHECK_SECONDS)
    def check_workers(self) -> None:
        """A worker silent for two heartbeat periods is lost: its runs end worker_lost."""
        workers.check(self.platform.engine, self.dispatch)

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}

    # Operator calls (`attune shell`, docs/operations.md "nameko shell"): across tenants, over
    # RabbitMQ only.
    @rpc
    def invoke(self, action_ref: Any, params: dict[str, Any] | None = None,
               tenant_id: int | None = None, wait: float = 30) -> dict[str, Any]:
        """Run an action of tenant `tenant_id` like a function: the execution is created as
        the API creates one (audit actor `operator`) and the call returns it once it ended, or
        as it is after `wait` seconds (at most 300; 0 returns at once). The call holds one of
        this executor's workers while it waits (it reads the status a few times a second)."""
        if tenant_id is None:
            raise ValueError("tenant_id is required: the tenant whose action runs")
        return operator.invoke(self.platform.engine, self.dispatch, action_ref, params,
                               tenant_id, wait)

    @rpc
    def stats(self) -> dict[str, Any]:
        """Executions by status (every tenant), the oldest waiting execution and unprocessed
        event with their age, and each work queue's ready messages and consumers."""
        return operator.stats(self.platform.engine, self.platform.settings.amqp_uri)

    @rpc
    def explain(self, event_id: int) -> dict[str, Any]:
        """Why event `event_id` ran what it ran: per rule on its trigger, the verdict recorded
        then, its enforcement and execution, its dry-run now, and a reason."""
        return operator.explain(self.platform.engine, event_id)
