"""Every request gets a request id (the caller's X-Request-Id if sane), returned in the
response, and one access log line at INFO: method, route, status, duration, request id."""

import logging

import pytest

pytestmark = pytest.mark.integration


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.access"]


def test_a_sane_request_id_is_kept_and_logged_with_the_route(client, make_user, caplog):
    _user, headers = make_user()
    caplog.set_level(logging.INFO, logger="gateway.access")
    r = client.get("/api/v1/executions/999999", headers={**headers, "X-Request-Id": "req-42.a"})
    assert r.status_code == 404 and r.headers["X-Request-Id"] == "req-42.a"
    [record] = access_records(caplog)
    assert record.levelno == logging.INFO
    assert (record.method, record.route, record.status) == (
        "GET", "/api/v1/executions/<execution_id>", 404)
    assert record.duration_ms >= 0 and record.request_id == "req-42.a"
    assert record.getMessage().startswith("GET /api/v1/executions/<execution_id> 404 ")


def test_a_bad_request_id_is_replaced_and_an_unknown_path_is_logged_without_it(
    client, caplog
):
    caplog.set_level(logging.INFO, logger="gateway.access")
    r = client.get("/no/such/path\nforged", headers={"X-Request-Id": "bad id\twith spaces"})
    made = r.headers["X-Request-Id"]
    assert r.status_code == 404 and made != "bad id\twith spaces" and len(made) == 32
    [record] = access_records(caplog)
    assert record.route is None and "forged" not in record.getMessage()
    assert record.request_id == made
    assert record.getMessage().startswith("GET (no route) 404 ")
