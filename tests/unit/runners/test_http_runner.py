"""The http runner against a local HTTP server (opened to it as an operator would, by an
allow-list entry for its exact address and port: test_destinations.py covers the refusals)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from runners.base import Outcome
from runners.destinations import DestinationPolicy
from runners.http import HttpRunner


class Handler(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def _reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Echo", self.headers.get("X-Token", ""))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.seen.append(("GET", self.path, dict(self.headers), b""))
        path = self.path.split("?")[0]
        if path == "/json":
            self._reply(200, json.dumps({"ok": True}))
        elif path == "/text":
            self._reply(200, "plain text", "text/plain")
        elif path == "/missing":
            self._reply(404, json.dumps({"error": "nope"}))
        elif path == "/big":
            self._reply(200, "b" * 5000, "text/plain")
        elif path == "/slow":
            threading.Event().wait(5)
            self._reply(200, "late", "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(("POST", self.path, dict(self.headers), body))
        self._reply(201, json.dumps({"received": json.loads(body or b"null")}))


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def allowing(url):
    """The policy an operator would configure for this test's destination: its address:port."""
    if not url:
        return DestinationPolicy()
    parts = urlsplit(url)
    return DestinationPolicy.from_entries([f"{parts.hostname}:{parts.port}"])


def run(make_request, **config):
    return HttpRunner().run(make_request(None, runner_type="http", http_config=config,
                                         destination_policy=allowing(config.get("url"))))


def test_a_json_body_is_parsed_into_the_output_with_status_and_headers(server, make_request):
    result = run(make_request, url=f"{server}/json", headers={"X-Token": "abc"})
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"ok": True}
    assert result.status_code == 200
    assert result.headers["X-Echo"] == "abc"
    assert result.to_result()["status_code"] == 200
    assert result.duration_ms >= 0


def test_a_text_body_is_the_output_as_text(server, make_request):
    assert run(make_request, url=f"{server}/text").output == "plain text"


def test_a_json_body_is_sent_as_json(server, make_request):
    result = run(make_request, method="POST", url=f"{server}/post", body={"a": [1, 2]})
    assert result.status_code == 201
    assert result.output == {"received": {"a": [1, 2]}}
    assert Handler.seen[-1][2]["Content-Type"] == "application/json"


def test_a_text_body_is_sent_as_is(server, make_request):
    result = run(make_request, method="POST", url=f"{server}/post", body='{"raw": true}',
                 headers={"Content-Type": "application/json"})
    assert result.output == {"received": {"raw": True}}


def test_a_non_success_status_fails_with_a_clear_error(server, make_request):
    result = run(make_request, url=f"{server}/missing")
    assert result.outcome is Outcome.FAILED
    assert result.status_code == 404
    assert result.output == {"error": "nope"}
    assert result.error["type"] == "http_status"
    assert "HTTP 404" in result.error["message"]


def test_success_status_can_accept_other_codes(server, make_request):
    result = run(make_request, url=f"{server}/missing", success_status=[404])
    assert result.outcome is Outcome.SUCCEEDED


def test_a_refused_connection_fails_with_connection_error(make_request):
    result = run(make_request, url="http://127.0.0.1:9/")
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "connection_error"


def test_a_slow_server_fails_with_timeout(server, make_request):
    result = run(make_request, url=f"{server}/slow", timeout=0.3)
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "timeout"


def test_a_large_body_is_truncated(server, make_request):
    request = make_request(None, runner_type="http", max_output_bytes=100,
                           http_config={"url": f"{server}/big"},
                           destination_policy=allowing(server))
    result = HttpRunner().run(request)
    assert result.truncated is True
    assert result.output == "b" * 100 + "... (output truncated after 100 bytes)"


def test_secrets_are_masked_in_headers_and_errors(server, make_request):
    request = make_request(None, runner_type="http", secrets={"t": "tok-secret-1"},
                           http_config={"url": f"{server}/missing?key=tok-secret-1",
                                        "headers": {"X-Token": "tok-secret-1"}},
                           destination_policy=allowing(server))
    result = HttpRunner().run(request)
    assert result.headers["X-Echo"] == "***"
    assert "tok-secret-1" not in result.error["message"]


def test_a_missing_url_is_an_invalid_config(make_request):
    result = run(make_request, method="GET")
    assert result.error["type"] == "invalid_http_config"


def test_headers_that_do_not_render_to_a_mapping_are_an_invalid_config(server, make_request):
    result = run(make_request, url=f"{server}/json", headers="X-Token: abc")
    assert result.error["type"] == "invalid_http_config"
