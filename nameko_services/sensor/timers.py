"""Timer triggers: which ones run, where each resumes, and firing exactly once.

A timer runs while it is active and at least one enabled rule uses it. Firing is one
transaction: a conditional UPDATE of `triggers.last_fired_at` (only the first process to hand
out a schedule point wins, across restarts and replicas), then the event row. News after commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    update,
)

from .. import metrics
from ..domain import events, messages, schedules
from ..domain.db import isoformat, transaction
from ..domain.models import rules, triggers
from ..domain.states import TIMER_TYPES, TriggerType
from .scheduler import Scheduler

log = logging.getLogger(__name__)

# A timer (re)loaded within this long after one of its points still fires that point, so a
# quick restart misses nothing; older missed points are skipped rather than fired in a burst.
RESUME_GRACE = timedelta(seconds=1)
ACTIVE = "active"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """What the scheduler keeps per timer trigger; `fingerprint` changes when its schedule does."""

    trigger_id: int
    ref: str
    schedule: schedules.Schedule
    last_fired_at: datetime | None
    fingerprint: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class Fired:
    """A fire that happened: the events it created (one per tenant) and its lateness."""

    events: list[dict[str, Any]]
    deviation: timedelta


def _has_enabled_rule() -> ColumnElement[bool]:
    """EXISTS an enabled rule on the trigger (of its tenant; any tenant for system triggers)."""
    return exists().where(
        rules.c.trigger_id == triggers.c.id,
        rules.c.enabled.is_(True),
        or_(triggers.c.tenant_id.is_(None), rules.c.tenant_id == triggers.c.tenant_id),
    )


def _runnable() -> ColumnElement[bool]:
    return and_(
        triggers.c.type.in_([t.value for t in TIMER_TYPES]),
        triggers.c.status == ACTIVE,
        _has_enabled_rule(),
    )


def _spec(row: Mapping[str, Any]) -> TimerSpec | None:
    try:
        schedule = schedules.parse(row["type"], row["parameters"], row["created_at"])
    except schedules.ScheduleError as exc:
        log.warning("timer trigger %s has a bad schedule, not run: %s", row["id"], exc)
        return None
    fingerprint = json.dumps([row["type"], row["parameters"], isoformat(row["created_at"])],
                             sort_keys=True, default=str)
    return TimerSpec(trigger_id=row["id"], ref=row["ref"], schedule=schedule,
                     last_fired_at=row["last_fired_at"], fingerprint=fingerprint)


def load(conn: Connection, trigger_id: int) -> TimerSpec | None:
    """The timer of one trigger, or None when it should not run."""
    row = conn.execute(
        select(triggers).where(triggers.c.id == trigger_id, _runnable())
    ).mappings().one_or_none()
    return _spec(row) if row is not None else None


def load_all(conn: Connection) -> list[TimerSpec]:
    """Every timer that should run (a sweep across tenants)."""
    rows = conn.execute(select(triggers).where(_runnable()).order_by(triggers.c.id)).mappings()
    return [spec for spec in map(_spec, rows) if spec is not None]


def apply(
    scheduler: Scheduler, trigger_id: int, spec: TimerSpec | None, now: datetime | None = None
) -> None:
    """Put, keep or drop one timer: an unchanged schedule keeps its place in the heap."""
    if spec is None:
        scheduler.remove(trigger_id)
        return
    current = scheduler.get(trigger_id)
    if current is not None and current.fingerprint == spec.fingerprint:
        return
    due = schedules.first_fire(spec.schedule, last_fired_at=spec.last_fired_at,
                               now=now or datetime.now(UTC), grace=RESUME_GRACE)
    if due is None:
        scheduler.remove(trigger_id)
    else:
        scheduler.put(trigger_id, due, spec)


def sync(scheduler: Scheduler, specs: Iterable[TimerSpec], now: datetime | None = None) -> None:
    """Make the heap hold exactly these timers."""
    specs = list(specs)
    wanted = {spec.trigger_id for spec in specs}
    for trigger_id in scheduler.keys() - wanted:
        scheduler.remove(trigger_id)
    for spec in specs:
        apply(scheduler, spec.trigger_id, spec, now)


def describe(scheduler: Scheduler) -> list[dict[str, Any]]:
    """Every timer in this process's heap with its next fire time, soonest first (the sensor's
    `timers()` RPC)."""
    found = []
    held = scheduler.keys()  # a copy: the heap may change meanwhile
    for trigger_id in held:
        spec, due = scheduler.get(trigger_id), scheduler.due(trigger_id)
        if spec is None or due is None:  # removed meanwhile
            continue
        found.append({"trigger_id": trigger_id, "ref": spec.ref,
                      "schedule": type(spec.schedule).__name__.removesuffix("Schedule").lower(),
                      "next_fire_at": isoformat(due),
                      "last_fired_at": isoformat(spec.last_fired_at)})
    return sorted(found, key=lambda timer: (timer["next_fire_at"], timer["trigger_id"]))


def refresh(engine: Engine, scheduler: Scheduler, trigger_id: int | None) -> None:
    """Re-read one trigger after a definition change (rule or trigger created/updated/deleted);
    without a trigger id, re-read them all."""
    if trigger_id is None:
        resync(engine, scheduler)
        return
    with engine.connect() as conn:
        spec = load(conn, trigger_id)
    apply(scheduler, trigger_id, spec)


def resync(engine: Engine, scheduler: Scheduler) -> None:
    """Re-read every timer: at start-up, after a pack change and as a periodic safety net."""
    with engine.connect() as conn:
        specs = load_all(conn)
    sync(scheduler, specs)


def fire(engine: Engine, trigger_id: int, scheduled_at: datetime) -> Fired | None:
    """Hand out one schedule point exactly once; None when it was not ours to fire.

    The UPDATE succeeds only while the trigger is active, still has an enabled rule and has
    not handed out this point (or a later one) yet. `fired_at` is when the timer went off
    (before the bookkeeping), so `fired_at - scheduled_at` measures the scheduler's precision.
    """
    fired_at = datetime.now(UTC)
    with transaction(engine) as conn:
        row = conn.execute(
            update(triggers)
            .where(
                triggers.c.id == trigger_id,
                triggers.c.status == ACTIVE,
                or_(triggers.c.last_fired_at.is_(None), triggers.c.last_fired_at < scheduled_at),
                _has_enabled_rule(),
            )
            .values(
                last_fired_at=scheduled_at,
                fire_count=triggers.c.fire_count + 1,
                status=case((triggers.c.type == TriggerType.DATE.value, EXPIRED),
                            else_=triggers.c.status),
                updated_at=func.now(),
            )
            .returning(triggers)
        ).mappings().one_or_none()
        if row is None:
            return None
        payload = {
            "trigger_id": row["id"],
            "scheduled_at": isoformat(scheduled_at),
            "fired_at": isoformat(fired_at),
            "fire_count": row["fire_count"],
        }
        created = [
            events.create(conn, trigger=dict(row), source="timer", payload=payload,
                          tenant_id=tenant_id)[0]
            for tenant_id in _event_tenants(conn, row)
        ]
    deviation = fired_at - scheduled_at
    log.debug("timer %s fired %s for %s (deviation %.1f ms)", row["ref"], row["fire_count"],
              isoformat(scheduled_at), deviation.total_seconds() * 1000)
    return Fired(events=created, deviation=deviation)


def fire_and_announce(
    engine: Engine,
    dispatch: Callable[..., None],
    scheduler: Scheduler,
    trigger_id: int,
    scheduled_at: datetime,
) -> Fired | None:
    """Fire, then publish EVENT_CREATED (source "sensor"); a lost fire re-reads the trigger,
    so a timer whose last rule went away leaves the heap even if its message was missed."""
    fired = fire(engine, trigger_id, scheduled_at)
    if fired is None:
        refresh(engine, scheduler, trigger_id)
        return None
    for event in fired.events:
        metrics.EVENTS.labels(event["source"]).inc()
        dispatch(messages.EVENT_CREATED, events.announcement(event))
    return fired


def _event_tenants(conn: Connection, trigger: Mapping[str, Any]) -> list[int]:
    """A tenant's trigger fires for its tenant; a system one for each tenant with a rule on it."""
    if trigger["tenant_id"] is not None:
        return [trigger["tenant_id"]]
    return list(conn.execute(
        select(rules.c.tenant_id).distinct()
        .where(rules.c.trigger_id == trigger["id"], rules.c.enabled.is_(True))
        .order_by(rules.c.tenant_id)
    ).scalars())
