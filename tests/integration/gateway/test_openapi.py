"""GET /api/v1/openapi.json: generated from the url_map, so no route can be left out."""

import re

import pytest
from flask import Blueprint

from gateway.api.openapi import build_openapi
from gateway.app import create_app
from gateway.auth import PUBLIC, permission

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
            success = operation["responses"]["2XX"]["content"]
            assert success and all(media["schema"] for media in success.values()), (path, method)
            if method in ("POST", "PUT", "PATCH"):
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert resolve(document, body["$ref"])["type"] == "object", (path, method)
    assert walked == sum(len(item) for item in document["paths"].values())


def test_json_answers_are_the_envelope_and_pages_say_what_they_are(document):
    """api.md "Responses": `data` (and `pagination` for lists); HTML, assets and Prometheus
    text are documented as what they are, so clients and the fuzzer can check them."""
    executions = document["paths"]["/api/v1/executions"]["get"]["responses"]["2XX"]["content"]
    envelope = resolve(document, executions["application/json"]["schema"]["$ref"])
    assert set(envelope["properties"]) == {"data", "pagination"}
    assert envelope["properties"]["pagination"]["required"] == [
        "total", "limit", "offset", "next_offset"]
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

    app.register_blueprint(extra)
    operation = build_openapi(app)["paths"]["/api/v1/gadgets/{gadget_id}/parts/{name}"]["get"]
    assert operation["summary"] == "One part of a gadget."
    assert operation["description"] == "Longer description."
    assert operation["x-attune-permission"] == "read"
    assert {p["name"]: p["schema"]["type"] for p in operation["parameters"]} == {
        "gadget_id": "integer", "name": "string"}
