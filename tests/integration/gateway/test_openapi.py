"""GET /api/v1/openapi.json: generated from the url_map, so no route can be left out."""

import re
from typing import Any

import jsonschema
import pytest
from flask import Blueprint

from gateway.api.openapi import build_openapi, returns
from gateway.app import create_app
from gateway.auth import PUBLIC, permission
from gateway.http import accepts, json_body, one
from tests.support.packs import create_pack

pytestmark = pytest.mark.integration

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")  # no token: the document is public
    assert response.status_code == 200
    return response.json


def resolve(document, ref):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_document_has_the_openapi_3_0_skeleton(document):
    assert re.fullmatch(r"3\.0\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["properties"]) == {"code", "message", "details"}


def test_every_route_and_method_of_the_app_is_documented(app, document):
    """Walks the Flask URL map: a route the document lacks (or describes without a request or
    response schema) fails here."""
    walked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert path in document["paths"], f"{method} {rule.rule} is not documented"
            operation = document["paths"][path][method.lower()]
            walked += 1
            assert operation["x-attune-permission"] == app.view_functions[
                rule.endpoint].attune_permission, (path, method)
            if "204" in operation["responses"] or "101" in operation["responses"]:
                assert "2XX" not in operation["responses"], (path, method)
                continue  # a delete (nothing to describe) or /ws (WebSocket)
            success = operation["responses"]["2XX"]["content"]
            assert success and all(media["schema"] for media in success.values()), (path, method)
            if "application/json" in success:  # its own object, not the generic envelope
                schema = success["application/json"]["schema"]
                assert schema != {"$ref": "#/components/schemas/Envelope"}, (path, method)
                data = schema["properties"]["data"] if "properties" in schema else schema
                ref = data.get("items", data)["$ref"]
                assert resolve(document, ref)["required"], (path, method)
            if method in ("POST", "PUT", "PATCH") and (path, method) not in BODILESS:
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                if path != "/api/v1/webhooks/{trigger_id}":  # any JSON: the event's payload
                    assert body["type"] == "object", (path, method)
                    assert body["additionalProperties"] is False, (path, method)
    assert walked == sum(len(item) for item in document["paths"].values())


# The POSTs that read no body (and say so by having no requestBody).
BODILESS = {("/api/v1/executions/{execution_id}/rerun", "POST"),
            ("/api/v1/executions/{execution_id}/cancel", "POST"), ("/auth/logout", "POST")}


def test_request_bodies_list_their_fields_types_and_required_ones(document):
    """The schemas `accepts` declares: what json_body() enforces, with each field's type."""
    login = document["paths"]["/auth/login"]["post"]["requestBody"]
    assert login["required"] is True
    assert login["content"]["application/json"]["schema"] == {
        "type": "object", "additionalProperties": False, "required": ["password", "username"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}
    for path in ("/api/v1/actions", "/api/v1/rules", "/api/v1/triggers", "/api/v1/packs",
                 "/api/v1/executions", "/api/v1/datastore", "/api/v1/secrets"):
        schema = document["paths"][path]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        assert schema["properties"] and all(
            "type" in field or "oneOf" in field or "description" in field
            for field in schema["properties"].values()), path
    action = document["paths"]["/api/v1/actions"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
    assert action["timeout"]["type"] == "number" and action["secrets"]["type"] == "array"
    assert document["paths"]["/api/v1/executions"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["required"] == ["action"]
    assert "requestBody" not in document["paths"]["/auth/logout"]["post"]
    upload = document["paths"]["/api/v1/packs"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]
    assert upload["required"] == ["file"] and upload["properties"]["file"]["format"] == "binary"


def test_json_answers_are_the_envelope_and_pages_say_what_they_are(document):
    """api.md "Responses": `data` (and `pagination` for lists); HTML, assets and Prometheus
    text are documented as what they are, so clients and the fuzzer can check them."""
    executions = document["paths"]["/api/v1/executions"]["get"]["responses"]["2XX"]["content"]
    listing = executions["application/json"]["schema"]
    assert listing["required"] == ["data", "pagination"]
    assert listing["properties"]["data"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Execution"}}
    assert resolve(document, listing["properties"]["pagination"]["$ref"])["required"] == [
        "total", "limit", "offset", "next_offset"]
    one_execution = document["paths"]["/api/v1/executions/{execution_id}"]["get"]["responses"]
    assert one_execution["2XX"]["content"]["application/json"]["schema"]["properties"] == {
        "data": {"$ref": "#/components/schemas/Execution"}}
    execution = document["components"]["schemas"]["Execution"]
    assert {"id", "status", "action_ref", "parameters", "result"} <= set(execution["required"])
    assert document["paths"]["/api/v1/actions/{action_id}"]["delete"]["responses"]["204"]
    for path in ("/ui/{page}", "/ui/executions/{execution_id}", "/api/docs", "/ui/live"):
        assert list(document["paths"][path]["get"]["responses"]["2XX"]["content"]) == [
            "text/html"], path
    assert list(document["paths"]["/metrics"]["get"]["responses"]["2XX"]["content"]) == [
        "text/plain"]


def test_operations_are_well_formed(document):
    seen_ids = set()
    for path, method, operation in operations(document):
        assert path.startswith("/") and method in METHODS
        assert operation["operationId"] not in seen_ids
        seen_ids.add(operation["operationId"])
        assert operation["summary"]
        assert "undeclared" not in operation["x-attune-permission"], (path, method)
        declared = {p["name"]: p for p in operation.get("parameters", [])
                    if p["in"] == "path"}
        assert set(re.findall(r"{(\w+)}", path)) == set(declared), path
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in ("path", "query"), (path, parameter)
            assert parameter["required"] is (parameter["in"] == "path")
            assert parameter["schema"]["type"] in ("integer", "string", "number")
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"default|[1-5](\d\d|XX)", status), status
            if "$ref" in response:
                assert resolve(document, response["$ref"])["description"]


def test_the_routes_that_can_wait_document_their_wait_parameter(document):
    """api.md "Waiting for the result": `?wait=` of API runs and webhooks, and its refusals."""
    for path in ("/api/v1/executions", "/api/v1/webhooks/{trigger_id}"):
        operation = document["paths"][path]["post"]
        [wait] = [p for p in operation["parameters"] if p["in"] == "query"]
        assert wait["name"] == "wait" and wait["schema"]["type"] == "number"
        assert "too_many_waiters" in operation["responses"]["503"]["description"]
    assert "too_many_waiters" in document["components"]["schemas"]["Error"]["properties"][
        "error"]["properties"]["code"]["enum"]
    dry_run = document["paths"]["/api/v1/rules/{rule_id}/test"]["post"]
    assert dry_run["x-attune-permission"] == "read" and "nothing stored" in dry_run["summary"]


def test_public_routes_need_no_token_and_the_rest_need_a_bearer(document):
    assert document["security"] == [{"bearerAuth": []}]
    public = {(p, m) for p, m, op in operations(document) if op["x-attune-permission"] == PUBLIC}
    assert {("/health", "get"), ("/api/v1/openapi.json", "get"), ("/ws", "get"),
            ("/auth/register", "post"), ("/auth/login", "post")} <= public
    for path, method, operation in operations(document):
        if (path, method) in public:
            assert operation["security"] == []
        else:
            assert "security" not in operation  # inherits bearerAuth
            assert operation["responses"]["401"] == {"$ref": "#/components/responses/Error"}


def test_views_docstring_is_the_summary_and_ws_is_marked(document):
    health = document["paths"]["/health"]["get"]
    assert health["summary"].startswith("Platform health")
    assert document["paths"]["/ws"]["get"]["x-attune-websocket"] is True


def test_a_new_route_appears_without_touching_the_generator(config, engine):
    app = create_app(config)
    extra = Blueprint("extra", __name__)

    @extra.get("/api/v1/gadgets/<int:gadget_id>/parts/<name>")
    @permission("read")
    def gadget_part(gadget_id, name):
        """One part of a gadget.

        Longer description.
        """

    @extra.post("/api/v1/gadgets")
    @permission("write")
    @accepts({"name": {"type": "string"}, "size": {"type": "integer"}}, {"name"})
    @returns("Pack")
    def make_gadget():
        """Make a gadget."""
        return one(json_body(), 201)

    app.register_blueprint(extra)
    document = build_openapi(app)
    operation = document["paths"]["/api/v1/gadgets/{gadget_id}/parts/{name}"]["get"]
    assert operation["summary"] == "One part of a gadget."
    assert operation["description"] == "Longer description."
    assert operation["x-attune-permission"] == "read"
    assert {p["name"]: p["schema"]["type"] for p in operation["parameters"]} == {
        "gadget_id": "integer", "name": "string"}
    # no `returns`: the generic envelope, still a documented JSON answer
    assert operation["responses"]["2XX"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Envelope"}
    # `accepts` is both the document's request schema and what json_body() lets through
    make = document["paths"]["/api/v1/gadgets"]["post"]
    assert make["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}
    assert make["responses"]["2XX"]["content"]["application/json"]["schema"]["properties"] == {
        "data": {"$ref": "#/components/schemas/Pack"}}
    headers = admin_headers(app, engine)
    client = app.test_client()
    ok = client.post("/api/v1/gadgets", headers=headers, json={"name": "g", "size": 2})
    assert ok.status_code == 201 and ok.json["data"] == {"name": "g", "size": 2}
    refused = client.post("/api/v1/gadgets", headers=headers, json={"size": 2, "colour": "red"})
    assert refused.status_code == 422
    assert refused.json["error"]["details"]["fields"] == {"colour": "unknown field",
                                                          "name": "required"}


def admin_headers(app, engine) -> dict[str, str]:
    import uuid

    from tests.support.factories import PASSWORD, make_admin

    name = f"oa-{uuid.uuid4().hex[:10]}"
    make_admin(engine, name)
    r = app.test_client().post("/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json['data']['access_token']}"}


# --- the schemas are true: real answers validate against their operation's schema --------------


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes "or null" (all else is the same)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        elif "type" not in node and ("allOf" in node or "oneOf" in node):
            node = {"anyOf": [node, {"type": "null"}]}
    return node


class Checker:
    """Validates each answer against the 2XX schema of the operation that gave it."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.components = json_schema(document["components"])
        self.checked: set[tuple[str, str]] = set()

    def __call__(self, response: Any, path: str, method: str = "get") -> Any:
        assert 200 <= response.status_code < 300, (path, method, response.json)
        responses = self.document["paths"][path][method]["responses"]
        if response.status_code == 204:
            assert "204" in responses and not response.data
        else:
            schema = json_schema(responses["2XX"]["content"]["application/json"]["schema"])
            jsonschema.Draft202012Validator(
                {**schema, "components": self.components},
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            ).validate(response.json)
        self.checked.add((path, method))
        return response.json


def test_the_main_routes_answer_what_the_document_says(client, document, make_user, engine):
    """A pack, trigger, action, rule, execution, webhook call, datastore item, secret, API key
    and user made through the API: every answer validates against its operation's schema."""
    check = Checker(document)
    user, headers = make_user()
    check(client.get("/api/v1/me", headers=headers), "/api/v1/me")
    pack = create_pack(client, headers)
    check(client.get("/api/v1/packs", headers=headers), "/api/v1/packs")
    check(client.get(f"/api/v1/packs/{pack['id']}", headers=headers), "/api/v1/packs/{pack_id}")
    check(client.get(f"/api/v1/packs/{pack['id']}/environment", headers=headers),
          "/api/v1/packs/{pack_id}/environment")
    trigger = check(client.post("/api/v1/triggers", headers=headers, json={
        "pack": pack["ref"], "name": "hook", "type": "webhook"}),
        "/api/v1/triggers", "post")["data"]
    assert trigger["webhook_token"]  # the optional fields are checked too when present
    check(client.get("/api/v1/triggers", headers=headers), "/api/v1/triggers")
    action = check(client.post("/api/v1/actions", headers=headers, json={
        "pack": pack["ref"], "name": "greet", "runner_type": "python", "timeout": 12.5,
        "code": "def run(name):\n    return 'hi ' + name\n", "secrets": ["api_key"],
        "parameters": {"name": {"type": "string"}, "token": {"type": "string", "secret": True}},
    }), "/api/v1/actions", "post")["data"]
    check(client.patch(f"/api/v1/actions/{action['id']}", headers=headers,
                       json={"description": "Greets"}), "/api/v1/actions/{action_id}", "patch")
    check(client.get("/api/v1/actions", headers=headers), "/api/v1/actions")
    rule = check(client.post("/api/v1/rules", headers=headers, json={
        "pack": pack["ref"], "name": "on-hook", "trigger": trigger["ref"],
        "action": action["ref"], "criteria": "payload.name == 'x'",
        "parameters": {"name": "{{ payload.name }}"},
    }), "/api/v1/rules", "post")["data"]
    check(client.get(f"/api/v1/rules/{rule['id']}", headers=headers), "/api/v1/rules/{rule_id}")
    check(client.post(f"/api/v1/rules/{rule['id']}/test", headers=headers,
                      json={"payload": {"name": "x"}}), "/api/v1/rules/{rule_id}/test", "post")
    execution = check(client.post("/api/v1/executions", headers=headers, json={
        "action": action["ref"], "parameters": {"name": "x", "token": "t"}}),
        "/api/v1/executions", "post")["data"]
    assert execution["parameters"]["token"] == "***"
    check(client.get(f"/api/v1/executions/{execution['id']}", headers=headers),
          "/api/v1/executions/{execution_id}")
    check(client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=headers),
          "/api/v1/executions/{execution_id}/cancel", "post")
    check(client.post(f"/api/v1/executions/{execution['id']}/rerun", headers=headers),
          "/api/v1/executions/{execution_id}/rerun", "post")
    receipt = check(client.post(f"/api/v1/webhooks/{trigger['id']}", json={"name": "x"},
                                headers={"X-Attune-Webhook-Token": trigger["webhook_token"]}),
                    "/api/v1/webhooks/{trigger_id}", "post")["data"]
    check(client.get(f"/api/v1/events/{receipt['event_id']}", headers=headers),
          "/api/v1/events/{event_id}")
    for path in ("/api/v1/executions", "/api/v1/events", "/api/v1/enforcements",
                 "/api/v1/inquiries", "/api/v1/sensors", "/api/v1/audit", "/api/v1/users",
                 "/api/v1/rules"):
        assert check(client.get(path, headers=headers), path)["data"] or path in (
            "/api/v1/enforcements", "/api/v1/inquiries", "/api/v1/sensors"), path
    check(client.post("/api/v1/datastore", headers=headers, json={
        "key": "k", "value": {"a": [1]}, "encrypted": True, "ttl_seconds": 60}),
        "/api/v1/datastore", "post")
    check(client.get("/api/v1/datastore/k", headers=headers), "/api/v1/datastore/{key}")
    check(client.get("/api/v1/datastore", headers=headers), "/api/v1/datastore")
    check(client.post("/api/v1/secrets", headers=headers, json={"key": "s", "value": "v"}),
          "/api/v1/secrets", "post")
    check(client.post("/api/v1/secrets", headers=headers, json={"key": "s", "value": "w"}),
          "/api/v1/secrets", "post")
    check(client.get("/api/v1/secrets/s", headers=headers), "/api/v1/secrets/{key}")
    key = check(client.post("/api/v1/apikeys", headers=headers, json={"name": "ci"}),
                "/api/v1/apikeys", "post")["data"]
    assert key["key"]
    check(client.get("/api/v1/apikeys", headers=headers), "/api/v1/apikeys")
    check(client.delete(f"/api/v1/apikeys/{key['id']}", headers=headers),
          "/api/v1/apikeys/{key_id}", "delete")
    check(client.post("/api/v1/users", headers=headers, json={
        "username": f"v-{user['id']}", "password": "password123", "role": "viewer"}),
        "/api/v1/users", "post")
    check(client.delete("/api/v1/datastore/k", headers=headers), "/api/v1/datastore/{key}",
          "delete")
    check(client.delete(f"/api/v1/rules/{rule['id']}", headers=headers),
          "/api/v1/rules/{rule_id}", "delete")
    assert len(check.checked) >= 35


def test_a_schema_that_lies_is_caught(document):
    """The check above can fail: an answer missing a required field, or with a wrong type."""
    schema = json_schema({**document["components"]["schemas"]["Secret"],
                          "components": document["components"]})
    jsonschema.validate({"key": "k", "created_at": "2026-01-01T00:00:00Z"}, schema)
    for wrong in ({"created_at": "2026-01-01T00:00:00Z"}, {"key": 1, "created_at": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
