"""Pack sensors run in child processes, once across replicas, and are restarted when they crash."""

from __future__ import annotations

import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select

from nameko_services.domain import messages, models
from nameko_services.sensor.supervisor import PackSensors
from tests.integration import rows

pytestmark = pytest.mark.integration

E, S = models.events, models.sensors

# "pid": which process emitted (a sandbox's own pids repeat, so a token drawn at start).
TICK = '''
import uuid

PROCESS = uuid.uuid4().hex


class Tick:
    def __init__(self):
        self.n = 0

    def poll(self):
        self.n += 1
        return [{"n": self.n, "pid": PROCESS}]
'''

CRASH = '''
class Crash:
    def poll(self):
        raise ValueError("no such host: " + self.config["host"])
'''


def sensor_pack(engine, tenant, tmp_path, code, config=None):
    folder = tmp_path / "pack"
    (folder / "sensors").mkdir(parents=True)
    (folder / "sensors" / "s.py").write_text(code)
    ref = rows.unique("spack").replace("-", "_")
    pack = rows.insert_row(engine, models.packs, tenant_id=tenant, ref=ref,
                           source_path=str(folder))
    trigger = rows.insert_row(engine, models.triggers, tenant_id=tenant, pack_id=pack["id"],
                              name="ticked", ref=f"{ref}.ticked", type="custom")
    sensor = rows.insert_row(engine, S, tenant_id=tenant, pack_id=pack["id"], ref=f"{ref}.s",
                             name="s", entry_point="sensors/s.py", poll_interval=0.1,
                             trigger_types=[trigger["ref"]], config=config or {})
    return trigger, sensor


def supervisor(container) -> PackSensors:
    [found] = [e for e in container.extensions if isinstance(e, PackSensors)]
    return found


def sensor_row(engine, sensor):
    return rows.rows(engine, S, S.c.id == sensor["id"])[0]


def events_of(engine, trigger):
    return rows.rows(engine, E, E.c.trigger_id == trigger["id"], order_by=E.c.id)


def test_one_replica_runs_a_sensor_and_another_takes_over_when_it_stops(
    start_sensor, engine, tenant, tmp_path, received
):
    trigger, sensor = sensor_pack(engine, tenant, tmp_path, TICK)
    replicas = [start_sensor(), start_sensor()]

    rows.wait_until(lambda: len(events_of(engine, trigger)) >= 5)
    # Other tests' sensors may live in the same database: look at this one only.
    holders = [c for c in replicas if sensor["ref"] in supervisor(c).running()]
    assert len(holders) == 1
    payloads = [e["payload"] for e in events_of(engine, trigger)]
    assert len({p["pid"] for p in payloads}) == 1  # one child process
    assert [p["n"] for p in payloads] == list(range(1, len(payloads) + 1))  # none twice
    event = events_of(engine, trigger)[0]
    assert event["source"] == "sensor" and event["tenant_id"] == tenant
    rows.wait_until(lambda: any(p.get("event_id") == event["id"] for _, _, p in received))
    row = sensor_row(engine, sensor)
    assert row["status"] == "running" and row["restarts"] == 0 and row["last_error"] is None

    holder = holders[0]
    other = next(c for c in replicas if c is not holder)
    first_pid = payloads[0]["pid"]
    holder.stop()
    # Unasked: the other replica claims sensors nobody runs every second (service.claim).
    rows.wait_until(lambda: sensor["ref"] in supervisor(other).running(), deadline=10)
    rows.wait_until(lambda: any(e["payload"]["pid"] != first_pid
                                for e in events_of(engine, trigger)))


def test_a_crashing_sensor_is_restarted_with_backoff_and_its_error_recorded(
    start_sensor, engine, tenant, tmp_path
):
    _, sensor = sensor_pack(engine, tenant, tmp_path, CRASH, {"host": "nowhere.invalid"})
    start_sensor()

    row = rows.wait_until(lambda: (r := sensor_row(engine, sensor))["restarts"] >= 2 and r,
                          deadline=20)
    assert "ValueError: no such host: nowhere.invalid" in row["last_error"]
    assert row["status"] in ("running", "restarting")


def test_a_lost_lock_session_stops_the_sensors_and_takes_them_again(
    start_sensor, engine, tenant, tmp_path, dispatch
):
    trigger, sensor = sensor_pack(engine, tenant, tmp_path, TICK)
    container = start_sensor()
    rows.wait_until(lambda: events_of(engine, trigger))
    first_pid = events_of(engine, trigger)[0]["payload"]["pid"]
    held = supervisor(container)
    backend = held._lock_conn.execute(select(func.pg_backend_pid())).scalar_one()
    with engine.begin() as conn:  # as a PostgreSQL restart would: the locks go with the session
        conn.execute(select(func.pg_terminate_backend(backend)))

    with entrypoint_waiter(container, "on_pack_changed", timeout=15):
        dispatch(messages.GATEWAY, messages.PACK_CHANGED, {"pack_id": sensor["pack_id"]})
    # Other tests' sensors may live in the same database (and be taken too): this one counts.
    assert sensor["ref"] in held.running()
    rows.wait_until(lambda: any(e["payload"]["pid"] != first_pid
                                for e in events_of(engine, trigger)))
