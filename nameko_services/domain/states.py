"""Execution statuses and the transitions allowed between them (api.md's state machine)."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELING = "canceling"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
    FAILED = "failed"
    CANCELED = "canceled"


S = ExecutionStatus

TERMINAL_STATES = frozenset({S.SUCCEEDED, S.SUCCEEDED_WITH_ERRORS, S.FAILED, S.CANCELED})
ACTIVE_STATES = frozenset({S.REQUESTED, S.SCHEDULED, S.RUNNING, S.PAUSED, S.CANCELING})

TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    S.REQUESTED: frozenset({S.SCHEDULED, S.RUNNING, S.FAILED, S.CANCELED}),
    S.SCHEDULED: frozenset({S.RUNNING, S.FAILED, S.CANCELED, S.REQUESTED}),
    S.RUNNING: frozenset(
        {S.SUCCEEDED, S.SUCCEEDED_WITH_ERRORS, S.FAILED, S.CANCELING, S.CANCELED, S.PAUSED}
    ),
    S.PAUSED: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELING, S.CANCELED}),
    S.CANCELING: frozenset({S.CANCELED, S.FAILED, S.SUCCEEDED}),
}

# Which timestamp column records arrival in each status.
TIMESTAMP_COLUMN: dict[ExecutionStatus, str] = {
    S.REQUESTED: "requested_at",
    S.SCHEDULED: "scheduled_at",
    S.RUNNING: "started_at",
    S.PAUSED: "paused_at",
    S.CANCELING: "canceling_at",
    S.SUCCEEDED: "finished_at",
    S.SUCCEEDED_WITH_ERRORS: "finished_at",
    S.FAILED: "finished_at",
    S.CANCELED: "finished_at",
}


def can_transition(current: str, target: str) -> bool:
    """True when `current → target` is an edge of the state machine."""
    return ExecutionStatus(target) in TRANSITIONS.get(ExecutionStatus(current), frozenset())


def sources_of(target: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """Every status from which `target` may be reached (for conditional UPDATE ... WHERE)."""
    return frozenset(src for src, dests in TRANSITIONS.items() if target in dests)


class TriggerType(StrEnum):
    INTERVAL = "interval"
    DATE = "date"
    CRON = "cron"
    WEBHOOK = "webhook"
    CUSTOM = "custom"
    EXECUTION = "execution"  # an execution of the tenant ended (domain/execution_triggers.py)


TIMER_TYPES = frozenset({TriggerType.INTERVAL, TriggerType.DATE, TriggerType.CRON})


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    EXECUTOR = "executor"
    VIEWER = "viewer"


class EnforcementStatus(StrEnum):
    CREATED = "created"
    SCHEDULED = "scheduled"
    FAILED = "failed"


class InquiryStatus(StrEnum):
    PENDING = "pending"
    RESPONDED = "responded"
    EXPIRED = "expired"
