"""Names and payloads of the events that cross RabbitMQ. Payloads are plain JSON dicts.

Consumers re-read rows by id and apply conditional updates, so a duplicated or redelivered
message is harmless; payloads carry ids, never authority. The messages about an event or an
execution carry its `trace_id` (domain/tracing.py) and, while spans are exported, the work
messages (PRIORITISED) the `parent_span_id` of the span that sent them (nameko_services/tracing.py).
"""

from __future__ import annotations

# Dispatched by the gateway (as service "gateway") or the sensor: {"event_id", "tenant_id",
# "trace_id", "event"?: its API shape when small}.
EVENT_CREATED = "event.created"
# Dispatched by the gateway after a definition changed: {"trigger_id"|"rule_id", "tenant_id", "op"}.
RULE_CHANGED = "rule.changed"
TRIGGER_CHANGED = "trigger.changed"
PACK_CHANGED = "pack.changed"
# Worker → notifier (source EXECUTIONS) while an action runs: a batch of its output lines,
# bounded and masked (domain/live_output.py): {"execution_id", "tenant_id", "trace_id", "stream"
# ("stdout"|"stderr"), "seq" (1, 2, … per stream), "lines", "dropped"}.
EXECUTION_OUTPUT = "execution.output"
# Worker → notifier (source WORKER) as a tenant pack's environment build starts and ends:
# {"pack_id", "tenant_id", "ref", "version", "status" (building|ready|failed),
# "elapsed_seconds", "error"} (the notifier's pack.env_building / env_ready / env_failed).
PACK_ENVIRONMENT = "pack.environment"
# Dispatched by the gateway when a user asks for an execution:
# {"execution_id", "tenant_id", "trace_id"} (executions.work_message).
EXECUTION_REQUESTED = "execution.requested"
# Executor → worker work message: {"execution_id", "tenant_id", "trace_id"}.
EXECUTION_SCHEDULED = "execution.scheduled"
# Any service (source EXECUTIONS) → notifier, after commit:
# {"execution_id", "tenant_id", "status", "previous", "parent_execution_id", "trace_id",
#  "execution": <full api dict>}.
EXECUTION_STATUS_CHANGED = "execution.status_changed"
EXECUTION_CREATED = "execution.created"
# → executor: the same message, for the few status changes it acts on (needs_follow_up in
# domain.executions). green.Publisher adds this routing key (RabbitMQ's `CC` header) to those
# EXECUTION_STATUS_CHANGED publishes, so the executor never consumes the rest.
EXECUTION_FOLLOW_UP = "execution.follow_up"
# Gateway → executor: {"execution_id", "tenant_id", "actor"}.
EXECUTION_CANCEL_REQUESTED = "execution.cancel_requested"
# Executor → notifier, after commit: an event was evaluated and started no execution (no rule
# matched, its enforcements failed, or it was refused): {"event_id", "tenant_id", "trigger_id",
# "rules_matched", "error"}. An event that starts executions is told by their EXECUTION_CREATED.
EVENT_PROCESSED = "event.processed"
# Rule matched with notify_on_trigger: {"rule_id", "tenant_id", "event_id", "execution_id"}.
RULE_TRIGGERED = "rule.triggered"
# Executor → notifier, after commit: {"inquiry_id", "tenant_id", "execution_id", "inquiry"}.
# INQUIRY_RESPONDED is also sent by the gateway (source GATEWAY) once an answer is stored: the
# executor then resumes the execution and publishes its own INQUIRY_RESPONDED for the notifier.
INQUIRY_CREATED = "inquiry.created"
INQUIRY_RESPONDED = "inquiry.responded"
INQUIRY_EXPIRED = "inquiry.expired"
# Executor → every executor process (broadcast): a durable timer row was inserted, so the
# process's timer loop re-reads the earliest due time: {"kind", "entity_id", "due_in"}.
TIMER_SCHEDULED = "timer.scheduled"
# Notifier → every gateway process (broadcast): {"tenant_id", "message": <api.md notification>}.
NOTIFICATION_PUBLISHED = "notification.published"
# Gateway → every gateway process (broadcast), after a logout or password change committed:
# {"user_id", "valid_after": <epoch seconds>} (gateway/revocations.py).
TOKENS_REVOKED = "user.tokens_revoked"
# Gateway → every service process (broadcast): the tenants with a WebSocket client or a waiting
# request in that gateway process, whose live news is therefore wanted (domain/presence.py):
# {"tenants": [tenant_id, …], "interval_seconds"}.
LISTENERS_PRESENT = "listeners.present"

# Work messages: each carries its tenant's RabbitMQ priority (domain/backlog.py, set by
# green.Publisher), and the executor's and worker's queues of them are priority queues
# (`event_handler(..., prioritised=True)`), so one tenant's flood does not hold up the others.
PRIORITISED = frozenset({EVENT_CREATED, EXECUTION_REQUESTED, EXECUTION_SCHEDULED})

# News that only feeds live notifications (the notifier, then the gateways' WebSocket clients):
# published transient (not written to the broker's disk: half its cost per message there), so
# a broker restart may drop a notification, never state: the database holds every change and
# the API serves it. A status change the executor acts on (EXECUTION_FOLLOW_UP) stays
# persistent (green.Publisher), as do work messages and every other message. A tenant's news
# that no gateway announced a listener for is not published at all (domain/presence.py).
NEWS_ONLY = frozenset({EXECUTION_CREATED, EXECUTION_STATUS_CHANGED, EXECUTION_OUTPUT,
                       RULE_TRIGGERED, EVENT_PROCESSED, NOTIFICATION_PUBLISHED, TOKENS_REVOKED,
                       PACK_ENVIRONMENT, LISTENERS_PRESENT})

# Service names as used for event exchanges (nameko: "<service>.events").
# EXECUTIONS is a shared source: every execution.created / execution.status_changed goes
# through it, whichever service made the change, so consumers see one ordered stream.
EXECUTIONS = "executions"
GATEWAY = "gateway"
EXECUTOR = "executor"
WORKER = "worker"
SENSOR = "sensor"
NOTIFIER = "notifier"
