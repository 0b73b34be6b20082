"""Timer triggers fire on their schedule, exactly once per point, across restarts and replicas."""

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select, update

from nameko_services.domain import messages, models
from nameko_services.domain.schedules import parse_rfc3339
from tests.integration import rows
from tests.integration.sensor.conftest import timers_held

pytestmark = pytest.mark.integration

E, T, R = models.events, models.triggers, models.rules


def timer_events(engine, trigger):
    return rows.rows(engine, E, E.c.trigger_id == trigger["id"])


def scheduled_points(engine, trigger):
    return [parse_rfc3339(e["payload"]["scheduled_at"]) for e in timer_events(engine, trigger)]


def trigger_row(engine, trigger):
    return rows.rows(engine, T, T.c.id == trigger["id"])[0]


def timer_with_rule(engine, tenant, type, parameters, **rule):
    trigger = rows.make_trigger(engine, tenant, type=type, parameters=parameters)
    action = rows.make_action(engine, tenant)
    return trigger, rows.make_rule(engine, tenant, trigger, action, **rule)


def set_enabled(engine, dispatch, containers, rule, enabled):
    """PATCH the rule as the gateway does: update the row, then publish RULE_CHANGED."""
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.id == rule["id"]).values(enabled=enabled))
        changed_at = conn.execute(select(func.now())).scalar_one()
    payload = {"rule_id": rule["id"], "trigger_id": rule["trigger_id"],
               "tenant_id": rule["tenant_id"], "op": "updated"}
    waiters = [entrypoint_waiter(c, "on_rule_changed", timeout=15,
                                 callback=lambda ctx, *_: ctx.args[0] == payload)
               for c in containers]
    for waiter in waiters:
        waiter.__enter__()
    dispatch(messages.GATEWAY, messages.RULE_CHANGED, payload)
    for waiter in waiters:
        waiter.__exit__(None, None, None)
    return changed_at


def ms(moment):
    """Payload timestamps are RFC 3339 with milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def on_grid(points, anchor, period):
    return all((p - ms(anchor)) % period == timedelta(0) for p in points)


def test_interval_timer_fires_on_its_grid_and_stops_and_resumes_with_its_rule(
    start_sensor, engine, tenant, dispatch, received
):
    trigger, rule = timer_with_rule(engine, tenant, "interval", {"seconds": 0.5})
    sensor = start_sensor()

    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= 3)
    points = scheduled_points(engine, trigger)
    period = timedelta(seconds=0.5)
    assert points[0] == ms(trigger["created_at"] + period)  # one interval after creation
    assert points == [points[0] + k * period for k in range(len(points))]  # no drift, no gaps
    first = timer_events(engine, trigger)[0]
    assert first["source"] == "timer"
    assert first["payload"]["trigger_id"] == trigger["id"]
    assert first["payload"]["fire_count"] == 1
    assert parse_rfc3339(first["payload"]["fired_at"]) >= points[0]
    rows.wait_until(lambda: {p["event_id"] for _, _, p in received} >= {first["id"]})

    disabled_at = set_enabled(engine, dispatch, [sensor], rule, False)
    assert trigger["id"] not in timers_held(sensor)
    time.sleep(1.5)  # three periods: nothing may fire for a disabled rule
    assert all(p <= disabled_at for p in scheduled_points(engine, trigger))
    count = len(timer_events(engine, trigger))
    assert trigger_row(engine, trigger)["fire_count"] == count

    set_enabled(engine, dispatch, [sensor], rule, True)  # re-enabling resumes on the same grid
    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= count + 2)
    later = scheduled_points(engine, trigger)[count:]
    assert later[0] > disabled_at
    assert on_grid(later, trigger["created_at"], period)


def test_two_sensor_processes_never_fire_a_point_twice(start_sensor, engine, tenant):
    trigger, _ = timer_with_rule(engine, tenant, "interval", {"seconds": 0.25})
    start_sensor(), start_sensor()

    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= 8)
    points = scheduled_points(engine, trigger)
    assert len(points) == len(set(points))
    assert points == sorted(points)
    assert on_grid(points, trigger["created_at"], timedelta(seconds=0.25))
    counts = [e["payload"]["fire_count"] for e in timer_events(engine, trigger)]
    assert counts == list(range(1, len(counts) + 1))


def test_a_restarted_sensor_resumes_without_firing_a_point_twice(start_sensor, engine, tenant):
    trigger, _ = timer_with_rule(engine, tenant, "interval", {"seconds": 0.5})
    first = start_sensor()
    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= 2)
    first.stop()
    before = scheduled_points(engine, trigger)
    assert ms(trigger_row(engine, trigger)["last_fired_at"]) == before[-1]

    start_sensor()
    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= len(before) + 2)
    points = scheduled_points(engine, trigger)
    assert len(points) == len(set(points))
    assert points == sorted(points)
    assert points[len(before)] > before[-1]
    assert on_grid(points, trigger["created_at"], timedelta(seconds=0.5))


def test_a_past_date_fires_once_at_start_up_and_never_again(start_sensor, engine, tenant):
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    trigger, _ = timer_with_rule(engine, tenant, "date", {"date": past})
    first = start_sensor()
    rows.wait_until(lambda: trigger_row(engine, trigger)["status"] == "expired")
    assert len(timer_events(engine, trigger)) == 1
    assert trigger["id"] not in timers_held(first)

    second = start_sensor()  # a restart does not load, let alone fire, an expired date
    assert trigger["id"] not in timers_held(second)
    assert len(timer_events(engine, trigger)) == 1
    assert scheduled_points(engine, trigger) == [parse_rfc3339(past)]


def test_a_future_date_created_while_running_fires_once_on_time(
    start_sensor, engine, tenant, dispatch
):
    sensor = start_sensor()
    at = datetime.now(UTC) + timedelta(seconds=1)
    trigger, rule = timer_with_rule(engine, tenant, "date",
                                    {"date": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})
    set_enabled(engine, dispatch, [sensor], rule, True)  # the gateway announces the new rule
    rows.wait_until(lambda: trigger_row(engine, trigger)["status"] == "expired")
    [event] = timer_events(engine, trigger)
    assert parse_rfc3339(event["payload"]["fired_at"]) >= parse_rfc3339(
        event["payload"]["scheduled_at"])
    assert trigger_row(engine, trigger)["fire_count"] == 1


def test_cron_with_seconds_fires_at_whole_seconds(start_sensor, engine, tenant):
    trigger, _ = timer_with_rule(engine, tenant, "cron", {"expression": "* * * * * *"})
    start_sensor()
    rows.wait_until(lambda: len(timer_events(engine, trigger)) >= 3)
    points = scheduled_points(engine, trigger)
    assert all(p.microsecond == 0 for p in points)
    assert {b - a for a, b in itertools.pairwise(points)} == {timedelta(seconds=1)}


def test_a_deleted_trigger_stops(start_sensor, engine, tenant, dispatch):
    trigger, _ = timer_with_rule(engine, tenant, "interval", {"seconds": 0.5})
    sensor = start_sensor()
    assert trigger["id"] in timers_held(sensor)
    with engine.begin() as conn:
        conn.execute(T.delete().where(T.c.id == trigger["id"]))
    with entrypoint_waiter(sensor, "on_trigger_changed", timeout=15,
                           callback=lambda ctx, *_: ctx.args[0]["trigger_id"] == trigger["id"]):
        dispatch(messages.GATEWAY, messages.TRIGGER_CHANGED,
                 {"trigger_id": trigger["id"], "tenant_id": tenant, "op": "deleted"})
    assert trigger["id"] not in timers_held(sensor)
