"""`observed`, a platform of its own for the observability tests: `attune up` on
config.e2e.yaml with ATTUNE_LOG_FORMAT=json and its spans sent to `otlp`, a receiver of
OTLP/HTTP this test process runs (decoded with opentelemetry-proto, as a collector would).
Its own database, vhost (the session's names + `_obs`), port (ATTUNE_E2E_OBS_PORT, default the
session's + 200) and run dir; stopped with `attune down` after this package.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from sqlalchemy.engine import make_url

from tests.e2e.conftest import (
    ATTUNE,
    CONFIG,
    DOWN_TIMEOUT_SECONDS,
    SANDBOX_REACHABLE,
    UP_TIMEOUT_SECONDS,
    RunningPlatform,
    _urls,
)
from tests.support.e2e import PROJECT_ROOT, ApiClient, load_config_with, log_tails, register_user


class SpanReceiver:
    """The spans exported to it, one dict each: service, name, trace_id, span_id,
    parent_span_id (hex; '' for a root) and attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(a.value.string_value for a in resource_spans.resource.attributes
                               if a.key == "service.name")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append({
                            "service": service, "name": span.name,
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                        })

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture(scope="package")
def otlp() -> Iterator[SpanReceiver]:
    receiver = SpanReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _observed_env(otlp_url: str) -> dict[str, str]:
    seen = load_config_with(CONFIG, dict(os.environ))
    database = make_url(seen["ATTUNE"]["database_url"])
    broker = urlsplit(seen["AMQP_URI"])
    port = int(os.environ.get("ATTUNE_E2E_OBS_PORT") or int(seen["ATTUNE"]["api_port"]) + 200)
    run_dir = (PROJECT_ROOT / ".attune" / "e2e-runs"
               / (datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f") + "-obs"))
    return {**os.environ, "ATTUNE_RUN_DIR": str(run_dir), "ATTUNE_API_PORT": str(port),
            "ATTUNE_DATABASE_URL": database.set(database=f"{database.database}_obs")
            .render_as_string(hide_password=False),
            "ATTUNE_AMQP_URI": urlunsplit(broker._replace(path=f"{broker.path}_obs")),
            "ATTUNE_LOG_FORMAT": "json", "ATTUNE_TRACING_OTLP_ENDPOINT": otlp_url,
            "ATTUNE_E2E_SANDBOX_ALLOW": json.dumps([f"{SANDBOX_REACHABLE}/32"])}


@pytest.fixture(scope="package")
def observed(otlp: SpanReceiver) -> Iterator[RunningPlatform]:
    """The platform with json logs and span export on."""
    env = _observed_env(otlp.url)
    api_url, ws_url = _urls(env)
    run_dir = PROJECT_ROOT / env["ATTUNE_RUN_DIR"]
    run_dir.mkdir(parents=True)
    (run_dir / "api_url").write_text(api_url)
    running = RunningPlatform(api_url, ws_url, run_dir, CONFIG, env)

    def attune(*args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([str(ATTUNE), *args, "--config", str(CONFIG)], cwd=PROJECT_ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    up = attune("up", "--fresh", timeout=UP_TIMEOUT_SECONDS)
    running.up_output = up.stdout + up.stderr
    (run_dir / "up.out").write_text(running.up_output)
    try:
        if up.returncode != 0:
            pytest.fail(f"`attune up` failed ({up.returncode}); logs in {run_dir}\n"
                        f"{running.up_output}")
        yield running
    finally:
        down = attune("down", timeout=DOWN_TIMEOUT_SECONDS)
        (run_dir / "down.out").write_text(down.stdout + down.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed test on the observed platform reports where its logs are, and their tails."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("observed")
    if report.failed and isinstance(running, RunningPlatform):
        report.sections.append(("observed platform's logs",
                                f"run dir: {running.run_dir}\n{log_tails(running.run_dir)}"))


@pytest.fixture
def tenant(observed: RunningPlatform) -> Iterator[ApiClient]:
    client = register_user(observed.api_url, ws_url=observed.ws_url)
    yield client
    client.close()
