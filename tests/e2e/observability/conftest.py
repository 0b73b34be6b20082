"""`observed`, a platform of its own for the observability tests: `attune up` on
config.e2e.yaml with ATTUNE_LOG_FORMAT=json and its spans sent to `otlp`, a receiver of
OTLP/HTTP this test process runs (decoded with opentelemetry-proto, as a collector would).
Its own database, vhost (the session's names + `_obs`), port (ATTUNE_E2E_OBS_PORT, default the
session's + 200) and run dir; stopped with `attune down` after this package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.conftest import RunningPlatform, platform_of_its_own
from tests.support.e2e import ApiClient, register_user


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


@pytest.fixture(scope="package")
def observed(otlp: SpanReceiver) -> Iterator[RunningPlatform]:
    """The platform with json logs and span export on."""
    with platform_of_its_own("obs", 200, ATTUNE_LOG_FORMAT="json",
                             ATTUNE_TRACING_OTLP_ENDPOINT=otlp.url) as running:
        yield running


@pytest.fixture
def tenant(observed: RunningPlatform) -> Iterator[ApiClient]:
    client = register_user(observed.api_url, ws_url=observed.ws_url)
    yield client
    client.close()
