"""Small helpers for the executor and sensor integration tests: rows, a message listener,
and waiting with a deadline. Rows are inserted with SQLAlchemy Core, one tenant per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from nameko.events import BROADCAST, event_handler
from psycopg2.errors import DeadlockDetected
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import OperationalError

from nameko_services.domain import models


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def insert_row(engine: Engine, table: Any, **values: Any) -> dict[str, Any]:
    with engine.begin() as conn:
        return dict(conn.execute(insert(table).values(**values).returning(table)).mappings().one())


def make_tenant(engine: Engine) -> int:
    return insert_row(engine, models.tenants, name=unique("tenant"))["id"]


def delete_tenant(engine: Engine, tenant_id: int, attempts: int = 5) -> None:
    """Everything of the tenant goes with it (ON DELETE CASCADE). The services may still be
    ending the test's last work (an execution trigger's event, say), so a deadlock between the
    cascade and their transaction is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                conn.execute(delete(models.tenants).where(models.tenants.c.id == tenant_id))
            return
        except OperationalError as exc:
            if not isinstance(exc.orig, DeadlockDetected) or attempt == attempts:
                raise


def make_pack(engine: Engine, tenant_id: int) -> dict[str, Any]:
    return insert_row(engine, models.packs, tenant_id=tenant_id, ref=unique("pack"))


def make_action(engine: Engine, tenant_id: int, **values: Any) -> dict[str, Any]:
    pack = make_pack(engine, tenant_id)
    name = values.pop("name", unique("act"))
    defaults = {"runner_type": "python", "code": "def run(**kw):\n    return kw\n",
                "parameters": {"message": {"type": "string"}}}
    return insert_row(engine, models.actions, tenant_id=tenant_id, pack_id=pack["id"],
                      name=name, ref=f"{pack['ref']}.{name}", **{**defaults, **values})


def make_trigger(engine: Engine, tenant_id: int, type: str = "webhook",
                 **values: Any) -> dict[str, Any]:
    name = values.pop("name", unique("trig"))
    return insert_row(engine, models.triggers, tenant_id=tenant_id, name=name,
                      ref=f"tests.{name}", type=type, **values)


def make_rule(engine: Engine, tenant_id: int, trigger: dict, action: dict,
              **values: Any) -> dict[str, Any]:
    name = values.pop("name", unique("rule"))
    return insert_row(engine, models.rules, tenant_id=tenant_id, name=name, ref=f"tests.{name}",
                      trigger_id=trigger["id"], action_id=action["id"], **values)


def make_event(engine: Engine, tenant_id: int, trigger: dict, payload: Any) -> dict[str, Any]:
    return insert_row(engine, models.events, tenant_id=tenant_id, trigger_id=trigger["id"],
                      trigger_ref=trigger["ref"], source="webhook", payload=payload)


def rows(engine: Engine, table: Any, *where: Any, order_by: Any = None) -> list[dict[str, Any]]:
    stmt = select(table).where(*where).order_by(order_by if order_by is not None else table.c.id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def wait_until(predicate: Callable[[], Any], deadline: float = 15.0) -> Any:
    """Poll until `predicate` returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline} s")
        time.sleep(0.02)


def listener(subscriptions: list[tuple[str, str]], sink: list) -> type:
    """A nameko service that appends (source, event_type, payload) for each subscription.

    Broadcast queues without reliable delivery: private to the listener, deleted with it.
    """
    attrs: dict[str, Any] = {"name": unique("listener")}
    for index, (source, event_type) in enumerate(subscriptions):
        def handle(self, payload, _source=source, _event_type=event_type):
            sink.append((_source, _event_type, payload))

        attrs[f"on_{index}"] = event_handler(
            source, event_type, handler_type=BROADCAST, reliable_delivery=False
        )(handle)
    return type("Listener", (), attrs)
