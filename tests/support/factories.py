"""Row factories: insert packs, actions, triggers, rules (and runtime rows) with SQLAlchemy Core.

Each takes an engine (or a connection), the tenant id (None for system rows) and overrides,
and returns the inserted row as a dict. Names are unique per call so tests never collide.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert

from nameko_services.domain import models, users
from nameko_services.domain.auth import in_place
from nameko_services.domain.db import transaction

PASSWORD = "password123"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_admin(engine: Engine, username: str | None = None, password: str = PASSWORD) -> dict:
    """A new tenant and its admin, through the domain code `attune create-user` uses (sign-up
    through the API is closed under nameko.yaml); log in over the API for its tokens."""
    with transaction(engine) as conn:
        return users.create_in_new_tenant(
            conn, username=username or unique("admin"), password=password, role="admin",
            tenant=None, actor_type="service", actor="test", offload=in_place)


def _insert(bind: Engine | Connection, table: Table, values: dict[str, Any]) -> dict[str, Any]:
    stmt = insert(table).values(**values).returning(table)
    if isinstance(bind, Connection):
        return dict(bind.execute(stmt).mappings().one())
    with bind.begin() as conn:
        return dict(conn.execute(stmt).mappings().one())


def make_pack(bind: Engine | Connection, tenant_id: int | None, **overrides: Any) -> dict:
    values = {"tenant_id": tenant_id, "ref": unique("pack"), "system": tenant_id is None}
    return _insert(bind, models.packs, {**values, **overrides})


def make_action(bind: Engine | Connection, tenant_id: int | None, **overrides: Any) -> dict:
    """A python action; pass `pack` (a row) to place it, else a new pack is made."""
    pack = overrides.pop("pack", None) or make_pack(bind, tenant_id)
    name = overrides.pop("name", unique("action"))
    values = {
        "tenant_id": tenant_id, "pack_id": pack["id"], "name": name,
        "ref": f"{pack['ref']}.{name}", "runner_type": "python",
        "code": "def run(**kwargs):\n    return kwargs\n",
        "parameters": {"url": {"type": "string", "required": True},
                       "token": {"type": "string", "secret": True}},
    }
    return _insert(bind, models.actions, {**values, **overrides})


def make_trigger(bind: Engine | Connection, tenant_id: int | None, **overrides: Any) -> dict:
    """A webhook trigger with a fresh token unless `type` says otherwise."""
    name = overrides.pop("name", unique("trigger"))
    kind = overrides.get("type", "webhook")
    values = {
        "tenant_id": tenant_id, "name": name, "ref": overrides.pop("ref", f"custom.{name}"),
        "type": kind, "parameters": {"seconds": 60} if kind == "interval" else {},
        "webhook_token": secrets.token_urlsafe(32) if kind == "webhook" else None,
    }
    return _insert(bind, models.triggers, {**values, **overrides})


def make_rule(bind: Engine | Connection, tenant_id: int, **overrides: Any) -> dict:
    """A rule linking `trigger` and `action` rows (made in the same tenant when not given)."""
    trigger = overrides.pop("trigger", None) or make_trigger(bind, tenant_id)
    action = overrides.pop("action", None) or make_action(bind, tenant_id)
    name = overrides.pop("name", unique("rule"))
    values = {
        "tenant_id": tenant_id, "name": name, "ref": f"custom.{name}",
        "trigger_id": trigger["id"], "action_id": action["id"],
    }
    return _insert(bind, models.rules, {**values, **overrides})


def make_event(bind: Engine | Connection, tenant_id: int, **overrides: Any) -> dict:
    trigger = overrides.pop("trigger", None) or make_trigger(bind, tenant_id)
    values = {"tenant_id": tenant_id, "trigger_id": trigger["id"], "trigger_ref": trigger["ref"],
              "source": "webhook", "payload": {"n": 1}}
    return _insert(bind, models.events, {**values, **overrides})


def make_enforcement(bind: Engine | Connection, tenant_id: int, **overrides: Any) -> dict:
    rule = overrides.pop("rule", None) or make_rule(bind, tenant_id)
    event = overrides.pop("event", None) or make_event(bind, tenant_id)
    values = {"tenant_id": tenant_id, "rule_id": rule["id"], "event_id": event["id"]}
    return _insert(bind, models.enforcements, {**values, **overrides})


def make_execution(bind: Engine | Connection, tenant_id: int, **overrides: Any) -> dict:
    """An execution row as the executor would leave it (status `requested` by default)."""
    action = overrides.pop("action", None) or make_action(bind, tenant_id)
    values = {"tenant_id": tenant_id, "action_id": action["id"], "action_ref": action["ref"],
              "status": "requested", "parameters": {"url": "http://x"}}
    return _insert(bind, models.executions, {**values, **overrides})


def wait_until(predicate: Callable[[], Any], deadline: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline} s")
        time.sleep(interval)
