"""Retention (issue 20, item 4): what the pruning pass removes and keeps, its dry run, the API
while it runs, the executor's schedule, the metric and `attune prune` on a real database.

Rows are made "old" by their timestamps (40 days; the cutoff is 30). Every other test's rows
are recent, so a pass over the shared test database touches only what these tests made.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import eventlet
import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from nameko_services.config import PROJECT_ROOT
from nameko_services.domain import locks, retention
from nameko_services.executor.service import ExecutorService
from tests.integration import rows

pytestmark = pytest.mark.integration

AGES = retention.Ages(executions=30 * 86_400, events=30 * 86_400, audit=365 * 86_400)
OLD = "now() - interval '40 days'"
RECENT = "now() - interval '1 day'"


def execution(conn, tenant_id, status, *, at=OLD, parent=None, event=None, finished=True):
    """An execution created (and, when `finished`, ended) at `at`."""
    return conn.execute(text(
        f"INSERT INTO executions (tenant_id, action_ref, status, parent_execution_id, event_id,"
        f" created_at, finished_at) VALUES (:t, 'tests.act', :s, :p, :e, {at},"
        f" {at if finished else 'NULL'}) RETURNING id"),
        {"t": tenant_id, "s": status, "p": parent, "e": event}).scalar_one()


def event(conn, tenant_id, *, at=OLD, processed=True):
    return conn.execute(text(
        f"INSERT INTO events (tenant_id, trigger_ref, source, created_at, processed_at)"
        f" VALUES (:t, 'tests.trig', 'api', {at}, {at if processed else 'NULL'}) RETURNING id"),
        {"t": tenant_id}).scalar_one()


def exists(engine, table, ids):
    with engine.connect() as conn:
        return set(conn.execute(text(f"SELECT id FROM {table} WHERE id = ANY(:ids)"),
                                {"ids": list(ids)}).scalars())


@pytest.fixture
def history(engine, tenant):
    """A mix of old and recent, finished and unfinished history, with what should go and what
    must stay; expected per-table counts of a pass."""
    rule = rows.make_rule(engine, tenant, rows.make_trigger(engine, tenant),
                          rows.make_action(engine, tenant))
    go, stay = {"executions": set(), "events": set()}, {"executions": set(), "events": set()}
    with engine.begin() as conn:
        ev_done = event(conn, tenant)  # its execution goes, so it goes
        lone = execution(conn, tenant, "succeeded", event=ev_done)
        conn.execute(text("INSERT INTO inquiries (tenant_id, execution_id, status)"
                          " VALUES (:t, :e, 'responded')"), {"t": tenant, "e": lone})
        conn.execute(text("INSERT INTO enforcements (tenant_id, rule_id, event_id, execution_id,"
                          " status, created_at) VALUES (:t, :r, :ev, :x, 'scheduled', " + OLD
                          + ")"), {"t": tenant, "r": rule["id"], "ev": ev_done, "x": lone})
        conn.execute(text("INSERT INTO rule_evaluations (tenant_id, event_id, rule_id, matched)"
                          " VALUES (:t, :ev, :r, true)"),
                     {"t": tenant, "ev": ev_done, "r": rule["id"]})
        root = execution(conn, tenant, "succeeded")  # a finished workflow: the whole tree goes
        child = execution(conn, tenant, "failed", parent=root)
        grandchild = execution(conn, tenant, "succeeded", parent=child)
        sibling = execution(conn, tenant, "canceled", parent=root)
        go["executions"] |= {lone, root, child, grandchild, sibling}

        running = execution(conn, tenant, "running", finished=False)  # a live workflow
        needed = execution(conn, tenant, "succeeded", parent=running)  # its finished task
        canceled = execution(conn, tenant, "canceled")  # ended, but a child still cancels
        canceling = execution(conn, tenant, "canceling", parent=canceled, finished=False)
        recent = execution(conn, tenant, "succeeded", at=RECENT)
        young_root = execution(conn, tenant, "succeeded", at=RECENT)
        old_task = execution(conn, tenant, "succeeded", parent=young_root)
        ev_kept = event(conn, tenant)  # still the event of a queued execution
        queued = execution(conn, tenant, "scheduled", event=ev_kept, finished=False)
        stay["executions"] |= {running, needed, canceled, canceling, recent, young_root,
                               old_task, queued}

        ev_lonely = event(conn, tenant)  # processed, nothing points at it: goes
        ev_unprocessed = event(conn, tenant, processed=False)
        ev_recent = event(conn, tenant, at=RECENT)
        ev_pending = event(conn, tenant)  # an enforcement not yet turned into an execution
        conn.execute(text("INSERT INTO enforcements (tenant_id, rule_id, event_id, status)"
                          " VALUES (:t, :r, :ev, 'created')"),
                     {"t": tenant, "r": rule["id"], "ev": ev_pending})
        go["events"] |= {ev_done, ev_lonely}
        stay["events"] |= {ev_kept, ev_unprocessed, ev_recent, ev_pending}

        conn.execute(text("INSERT INTO audit_log (tenant_id, timestamp, actor_type, actor, action,"
                          " entity_type, entity_id) VALUES"
                          " (:t, now() - interval '400 days', 'user', 'x', 'a', 'test', 'old'),"
                          " (:t, now() - interval '100 days', 'user', 'x', 'a', 'test', 'kept')"),
                     {"t": tenant})
    expected = {"inquiries": 1, "executions": 5, "rule_evaluations": 1, "enforcements": 1,
                "events": 2, "audit_log": 1}
    yield go, stay, expected
    with engine.begin() as conn:  # audit entries have no tenant foreign key
        conn.execute(text("SELECT set_config('attune.audit_prune_before', 'infinity', true)"))
        conn.execute(text("DELETE FROM audit_log WHERE entity_type = 'test'"))


def totals(engine):
    with engine.connect() as conn:
        return retention.totals(conn)


def test_a_pass_removes_old_finished_history_only_and_keeps_what_is_still_needed(
        engine, history):
    go, stay, expected = history
    before = totals(engine)

    pruned = retention.prune(engine, AGES, batch_size=2, pause_seconds=0)

    assert pruned == expected
    for table in ("executions", "events"):
        assert exists(engine, table, go[table]) == set()
        assert exists(engine, table, stay[table]) == stay[table]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT entity_id FROM audit_log WHERE entity_type = 'test'")
                            ).scalars().all() == ["kept"]
    after = totals(engine)
    assert {t: after.get(t, 0) - before.get(t, 0) for t in expected} == expected
    assert retention.prune(engine, AGES, batch_size=2, pause_seconds=0) == dict.fromkeys(
        retention.TABLES, 0)


def test_a_dry_run_counts_what_a_pass_then_deletes_and_deletes_nothing(engine, history):
    go, stay, expected = history

    counted = retention.count(engine, AGES)

    assert counted == expected
    for table in ("executions", "events"):
        assert exists(engine, table, go[table] | stay[table]) == go[table] | stay[table]
    assert retention.prune(engine, AGES, batch_size=1000, pause_seconds=0) == counted


def test_a_pass_rests_after_each_batch_in_proportion_to_its_work(engine, history):
    pauses = []

    retention.prune(engine, AGES, batch_size=2, pause_seconds=0, duty_cycle=0.25,
                    sleep=pauses.append)

    assert len(pauses) >= 3 and all(pause > 0 for pause in pauses)


def enforcement_of(engine, tenant, *, events_pending=False):
    """An old finished execution made by an enforcement of an old processed event (and, with
    `events_pending`, another rule's enforcement of that event still pending, which keeps the
    event): (execution, enforcement, event) ids."""
    trigger = rows.make_trigger(engine, tenant)
    rule = rows.make_rule(engine, tenant, trigger, rows.make_action(engine, tenant))
    with engine.begin() as conn:
        ev = event(conn, tenant)
        done = execution(conn, tenant, "succeeded", event=ev)
        made = conn.execute(text(
            "INSERT INTO enforcements (tenant_id, rule_id, event_id, execution_id, status,"
            " created_at) VALUES (:t, :r, :ev, :x, 'scheduled', " + OLD + ") RETURNING id"),
            {"t": tenant, "r": rule["id"], "ev": ev, "x": done}).scalar_one()
    if events_pending:
        other = rows.make_rule(engine, tenant, trigger, rows.make_action(engine, tenant))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO enforcements (tenant_id, rule_id, event_id, status)"
                              " VALUES (:t, :r, :ev, 'created')"),
                         {"t": tenant, "r": other["id"], "ev": ev})
    return done, made, ev


def test_an_enforcement_goes_with_its_execution_even_when_its_event_stays(engine, tenant):
    done, made, ev = enforcement_of(engine, tenant, events_pending=True)

    pruned = retention.prune(engine, AGES, batch_size=1000, pause_seconds=0)

    assert pruned["executions"] >= 1 and pruned["enforcements"] >= 1
    assert exists(engine, "executions", [done]) == set()
    assert exists(engine, "enforcements", [made]) == set()
    assert exists(engine, "events", [ev]) == {ev}  # another rule's enforcement still pending


def test_with_events_kept_forever_an_enforcement_outlives_its_execution(engine, tenant):
    done, made, ev = enforcement_of(engine, tenant)
    forever = retention.Ages(executions=AGES.executions, events=None, audit=None)

    assert retention.count(engine, forever)["enforcements"] == 0
    retention.prune(engine, forever, batch_size=1000, pause_seconds=0)

    assert exists(engine, "executions", [done]) == set()
    assert exists(engine, "events", [ev]) == {ev}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT execution_id FROM enforcements WHERE id = :e"),
                            {"e": made}).scalar_one() is None


def test_a_process_waiting_for_the_lock_gets_it_at_the_next_batch_and_the_pass_ends(
        engine, history):
    """A waiter (`attune prune`, bench/prune.py) need not wait for a whole pass."""
    *_, expected = history
    os_threading = eventlet.patcher.original("threading")
    waiter = engine.raw_connection()  # used only by the waiting OS thread below
    waiter.autocommit = True
    granted, release = os_threading.Event(), os_threading.Event()

    def wait_for_the_lock():
        with waiter.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, 0)", (locks.RETENTION,))
            granted.set()
            release.wait(60)
            cur.execute("SELECT pg_advisory_unlock(%s, 0)", (locks.RETENTION,))

    thread = os_threading.Thread(target=wait_for_the_lock)

    def waiting() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c"
                " AND NOT granted"), {"c": locks.RETENTION}).scalar_one())

    def pause(seconds):  # the first rest: a process starts waiting for the lock
        if not thread.is_alive() and not granted.is_set():
            thread.start()
            rows.wait_until(waiting, deadline=15)

    try:
        first = retention.prune(engine, AGES, batch_size=1, pause_seconds=0, sleep=pause)

        assert granted.wait(15), "the waiter never got the lock"
        assert sum(first.values()) < sum(expected.values())  # the pass ended early
        assert retention.prune(engine, AGES, batch_size=1, pause_seconds=0) is None
    finally:
        release.set()
        thread.join(30)
        waiter.close()
    rest = retention.prune(engine, AGES, batch_size=1000, pause_seconds=0)
    assert {t: first[t] + rest[t] for t in expected} == expected


def test_take_over_waits_for_the_holder_instead_of_giving_up(engine, history):
    """`attune prune` while another process prunes: it waits for the hand-over, then prunes."""
    *_, expected = history
    os_threading = eventlet.patcher.original("threading")
    holder = engine.raw_connection()
    holder.autocommit = True
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, 0)", (locks.RETENTION,))

    def release_soon():
        os_threading.Event().wait(0.5)
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, 0)", (locks.RETENTION,))

    try:
        assert retention.prune(engine, AGES, batch_size=1000, pause_seconds=0) is None
        os_threading.Thread(target=release_soon).start()
        assert retention.prune(engine, AGES, batch_size=1000, pause_seconds=0,
                               take_over=True) == expected
    finally:
        holder.close()


def test_audit_entries_stay_append_only_but_for_those_older_than_the_cutoff(engine, history):
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("SELECT set_config('attune.audit_prune_before',"
                          " (now() - interval '365 days')::text, true)"))
        conn.execute(text("DELETE FROM audit_log WHERE entity_type = 'test'"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE entity_type = 'test'")
                            ).scalar_one() == 2


def test_the_api_answers_while_a_pass_deletes_many_rows(engine, client, make_user):
    user, headers = make_user()
    with engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO executions (tenant_id, action_ref, status, created_at, finished_at)"
            f" SELECT :t, 'tests.act', 'succeeded', {OLD}, {OLD} FROM generate_series(1, 5000)"),
            {"t": user["tenant_id"]})
    batches = []

    def pause(seconds):
        batches.append(seconds)
        eventlet.sleep(seconds)

    pass_ = eventlet.spawn(retention.prune, engine, AGES, batch_size=250, pause_seconds=0.01,
                           sleep=pause)
    answered_between = set()  # how many batches were done when an answer came mid-pass
    while not pass_.dead:
        response = client.get("/api/v1/executions?limit=5", headers=headers)
        assert response.status_code == 200, response.json
        if batches and not pass_.dead:
            answered_between.add(len(batches))
        eventlet.sleep(0)

    assert pass_.wait()["executions"] == 5000
    assert len(answered_between) >= 2  # not one long stall: answers between several batches
    assert client.get("/api/v1/executions", headers=headers).json["data"] == []


@pytest.fixture
def often(config):
    """The platform's config with a pass every 0.2 s."""
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["retention"] = {**cfg["ATTUNE"].get("retention", {}),
                                  "interval_seconds": 0.2, "pause_seconds": 0}
    return cfg


def pruned_metric(client, table):
    body = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf'^attune_pruned_rows_total{{table="{table}"}} (\S+)$', body, re.M)
    assert match, body
    return float(match.group(1))


def test_the_executor_prunes_on_its_schedule_and_the_metric_counts_it(
        engine, tenant, container_factory, often, client):
    counted = pruned_metric(client, "executions")
    with engine.begin() as conn:
        old = execution(conn, tenant, "succeeded")
        live = execution(conn, tenant, "running", finished=False)
    container = container_factory(ExecutorService, often)
    with entrypoint_waiter(container, "resume", timeout=30):
        container.start()

    rows.wait_until(lambda: not exists(engine, "executions", [old]), deadline=30)

    assert exists(engine, "executions", [live]) == {live}
    assert pruned_metric(client, "executions") >= counted + 1


def test_attune_prune_on_a_real_database(engine, tenant, settings):
    with engine.begin() as conn:
        ten_days = execution(conn, tenant, "succeeded", at="now() - interval '10 days'")
        recent = execution(conn, tenant, "succeeded", at=RECENT)
    url = make_url(settings.database_url).set(password=None).render_as_string()
    env = {**os.environ, "ATTUNE_DATABASE_URL": url}

    def prune(*args):
        done = subprocess.run(
            [sys.executable, "-m", "nameko_services.cli", "prune", "--older-than", "7d", *args,
             "--config", str(PROJECT_ROOT / "nameko.yaml")],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    dry = prune("--dry-run")
    assert dry["dry_run"] is True and dry["rows"]["executions"] == 1
    assert exists(engine, "executions", [ten_days, recent]) == {ten_days, recent}

    done = prune()
    assert done["dry_run"] is False and done["rows"] == dry["rows"]
    assert exists(engine, "executions", [ten_days, recent]) == {recent}
