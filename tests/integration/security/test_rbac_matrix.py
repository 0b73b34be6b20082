"""T3.10 RBAC on every route: the app's own url_map, the four roles, another tenant's token.

The expectations come from api.md, not from gateway/auth.py's table: viewer GET only; executor
GET plus running (executions, inquiries); editor everything but user administration; admin all.
A new route is walked automatically; a path parameter this file does not know gets an id that
does not exist (so RBAC is still checked, tenancy cannot be).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from gateway.auth import PUBLIC
from nameko_services.domain import models
from tests.support.factories import (
    make_action,
    make_enforcement,
    make_event,
    make_execution,
    make_pack,
    make_rule,
    make_trigger,
)

pytestmark = pytest.mark.integration

ROLES = ("admin", "editor", "executor", "viewer")
# api.md "Auth and users": what each role may do.
MAY = {
    "admin": {"read", "self", "execute", "write", "admin"},
    "editor": {"read", "self", "execute", "write"},
    "executor": {"read", "self", "execute"},
    "viewer": {"read", "self"},
}
# api.md: "self" is a user's own account (any role): its password, its API keys, logging out.
SELF_ROUTES = ("/auth/logout", "/api/v1/me/", "/api/v1/apikeys")
# api.md: executors "create executions, cancel, respond to inquiries" — nothing else runs.
EXECUTE_PREFIXES = ("/api/v1/executions", "/api/v1/inquiries")
# api.md "Testing a rule": a dry-run stores and runs nothing, so whoever may read rules may ask.
READ_POSTS = frozenset({"POST /api/v1/rules/<rule_id>/test"})
MISSING_ID = "987654321"
_PARAM = re.compile(r"<(?:[a-z_]+(?:\([^>]*\))?:)?(\w+)>")


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    endpoint: str
    permission: str

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def routes(app) -> list[Route]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.websocket:
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Route(method, rule.rule, rule.endpoint,
                               getattr(view, "attune_permission", "undeclared")))
    return sorted(found, key=str)


@pytest.fixture
def world(client, engine, make_user) -> dict[str, Any]:
    """Tenant A (four users, one of everything), tenant B (an admin)."""
    admin, admin_headers = make_user()
    tid = admin["tenant_id"]
    headers = {"admin": admin_headers}
    for role in ROLES[1:]:
        headers[role] = make_user(role, admin_headers)[1]
    _, other = make_user()
    pack = make_pack(engine, tid)
    action = make_action(engine, tid, pack=pack, parameters={})
    trigger = make_trigger(engine, tid)
    rule = make_rule(engine, tid, trigger=trigger, action=action)
    event = make_event(engine, tid, trigger=trigger)
    enforcement = make_enforcement(engine, tid, rule=rule, event=event)
    execution = make_execution(engine, tid, action=action, status="running")
    with engine.begin() as conn:
        inquiry_id = conn.execute(
            models.inquiries.insert().values(tenant_id=tid, execution_id=execution["id"],
                                             prompt="ok?").returning(models.inquiries.c.id)
        ).scalar_one()
        sensor_id = conn.execute(
            models.sensors.insert().values(tenant_id=tid, pack_id=pack["id"],
                                           ref=f"{pack['ref']}.watch", name="watch",
                                           entry_point="watch.py")
            .returning(models.sensors.c.id)
        ).scalar_one()
    for path, body in (("/api/v1/datastore", {"key": "rbac_key", "value": 1}),
                       ("/api/v1/secrets", {"key": "rbac_secret", "value": "v"})):
        assert client.post(path, headers=admin_headers, json=body).status_code == 201
    ids = {"pack_id": pack["id"], "action_id": action["id"], "trigger_id": trigger["id"],
           "rule_id": rule["id"], "event_id": event["id"], "enforcement_id": enforcement["id"],
           "execution_id": execution["id"], "inquiry_id": inquiry_id, "sensor_id": sensor_id}
    return {"tenant_id": tid, "headers": headers, "other": other, "ids": ids,
            "action_ref": action["ref"], "pack_ref": pack["ref"]}


def url_for(route: Route, world: dict[str, Any]) -> tuple[str, bool]:
    """The concrete path, and whether every parameter names a real resource of tenant A."""
    known = True

    def fill(match: re.Match[str]) -> str:
        nonlocal known
        name = match.group(1)
        if name == "key":
            return "rbac_secret" if route.rule.startswith("/api/v1/secrets") else "rbac_key"
        if name in world["ids"]:
            return str(world["ids"][name])
        known = False
        return MISSING_ID

    return _PARAM.sub(fill, route.rule), known


def valid_body(route: Route, world: dict[str, Any]) -> dict[str, Any]:
    """A body the view would accept: a denial must be refused before it is looked at."""
    suffix = uuid.uuid4().hex[:8]
    bodies = {
        "POST /api/v1/packs": {"ref": f"rbac_{suffix}"},
        "POST /api/v1/actions": {"pack": world["pack_ref"], "name": f"a_{suffix}",
                                 "runner_type": "python", "code": "def run():\n    return 1\n"},
        "PATCH /api/v1/actions/<action_id>": {"description": "changed"},
        "POST /api/v1/triggers": {"name": f"t_{suffix}", "type": "webhook", "parameters": {}},
        "POST /api/v1/rules": {"name": f"r_{suffix}", "trigger": world["ids"]["trigger_id"],
                               "action": world["action_ref"]},
        "PATCH /api/v1/rules/<rule_id>": {"enabled": False},
        "POST /api/v1/rules/<rule_id>/test": {"payload": {}},
        "POST /api/v1/executions": {"action": world["action_ref"]},
        "POST /api/v1/datastore": {"key": f"k_{suffix}", "value": "v"},
        "POST /api/v1/secrets": {"key": f"s_{suffix}", "value": "v"},
        "POST /api/v1/users": {"username": f"u_{suffix}", "password": "password123",
                               "role": "viewer"},
        "POST /api/v1/inquiries/<inquiry_id>/respond": {"response": {}},
        "POST /api/v1/apikeys": {"name": f"k_{suffix}"},
    }
    return bodies.get(str(route), {})


def call(client, route: Route, path: str, headers: dict[str, str] | None, body: Any = None):
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if route.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body if body is not None else {}
    return client.open(path, method=route.method, **kwargs)


def fingerprint(engine, tenant_id: int) -> dict[str, str]:
    """A digest of every row tenant A owns (audit entries included)."""
    digests = {}
    with engine.connect() as conn:
        for table in models.metadata.sorted_tables:
            if "tenant_id" not in table.c or table.name == "tenants":
                continue
            digest = ("count(*) || ':' || "
                      "coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')")
            digests[table.name] = conn.execute(
                text(f"SELECT {digest} FROM {table.name} t WHERE tenant_id = :tid"),
                {"tid": tenant_id},
            ).scalar_one()
    return digests


def non_public(app) -> Iterator[Route]:
    return (r for r in routes(app) if r.permission != PUBLIC)


def test_every_route_declares_a_permission_that_matches_its_method(app):
    found = routes(app)
    assert len(found) > 30, "the route table looks empty"
    for route in found:
        assert route.permission in {PUBLIC, "read", "self", "execute", "write", "admin"}, route
        if route.permission == "read":
            assert route.method == "GET" or str(route) in READ_POSTS, \
                f"{route}: a write declared as read"
        if route.permission == "self":
            assert route.rule.startswith(SELF_ROUTES), f"{route}: not the caller's own account"
        if route.permission == "execute":
            assert route.rule.startswith(EXECUTE_PREFIXES), f"{route}: executors may not do this"
    # Console pages under /ui/ are static HTML; their data comes from the API with a token.
    public = {str(r) for r in found if r.permission == PUBLIC and not r.rule.startswith("/ui/")}
    assert public <= {"POST /auth/register", "POST /auth/login", "POST /auth/refresh",
                      "GET /api/v1/openapi.json", "GET /health", "GET /metrics",
                      "GET /api/docs", "GET /api/docs/<name>",  # Swagger UI: its static files
                      "POST /api/v1/webhooks/<trigger_id>"}, public


def test_without_a_token_every_protected_route_is_401(app, client, world):
    for route in non_public(app):
        path, _ = url_for(route, world)
        response = call(client, route, path, None, valid_body(route, world))
        assert response.status_code == 401, (str(route), response.json)
        assert response.json["error"]["code"] == "unauthorized"


def test_denied_requests_are_403_naming_role_and_permission_and_change_nothing(
    app, client, engine, world
):
    before = fingerprint(engine, world["tenant_id"])
    denied = 0
    for role in ROLES:
        for route in non_public(app):
            if route.permission in MAY[role]:
                continue
            path, _ = url_for(route, world)
            response = call(client, route, path, world["headers"][role],
                            valid_body(route, world))
            assert response.status_code == 403, (role, str(route), response.json)
            error = response.json["error"]
            assert error["code"] == "forbidden"
            assert f"'{role}'" in error["message"] and f"'{route.permission}'" in error["message"]
            assert error["details"] == {"role": role, "permission": route.permission}
            denied += 1
    assert denied > 20
    assert fingerprint(engine, world["tenant_id"]) == before


def test_allowed_roles_pass_the_permission_check_on_every_route(app, client, world):
    # Reads first, deletes last, so each call still finds the world it expects; logging out
    # (which ends the role's session) after everything else.
    order = {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}
    for route in sorted(non_public(app), key=lambda r: (
            r.rule == "/auth/logout", order.get(r.method, 1), str(r))):
        for role in ROLES:
            if route.permission not in MAY[role]:
                continue
            path, _ = url_for(route, world)
            response = call(client, route, path, world["headers"][role],
                            valid_body(route, world))
            assert response.status_code not in (401, 403), (role, str(route), response.json)
            assert response.status_code < 500, (role, str(route), response.json)


def test_another_tenants_token_finds_nothing_behind_any_id(app, client, world):
    checked = 0
    for route in non_public(app):
        path, known = url_for(route, world)
        if not known or "<" not in route.rule:
            continue
        response = call(client, route, path, world["other"], valid_body(route, world))
        assert response.status_code == 404, (str(route), response.json)
        assert response.json["error"]["code"] == "not_found"
        checked += 1
    assert checked >= 15
    # ...and tenant A's world is still there.
    admin = world["headers"]["admin"]
    assert client.get(f"/api/v1/rules/{world['ids']['rule_id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/secrets/rbac_secret", headers=admin).status_code == 200
