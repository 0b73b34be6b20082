"""e2e helpers for packs with environments and runners: upload a folder (as a tenant registers
a pack), wait for its env_status, run an action, and a local HTTP server that records what it
was sent."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from nameko_services.domain.settings import HttpRunnerSettings
from tests.support.e2e import (
    E2E_CONFIG,
    FIXTURE_PACKS,
    ApiClient,
    load_config_with,
    wait_for_execution,
    wait_until,
)
from tests.support.network import own_addresses
from tests.support.packs import tar_gz


def copy_fixture_pack(name: str, into: Path) -> Path:
    """A writable copy of tests/fixtures/packs/<name> (without any node_modules link)."""
    target = into / name
    shutil.copytree(FIXTURE_PACKS / name, target, ignore=shutil.ignore_patterns("node_modules"))
    return target


def upload_folder(api: ApiClient, folder: Path, url: str = "/api/v1/packs") -> requests.Response:
    """POST a .tar.gz of `folder` as multipart/form-data (`file`), as a tenant uploads a pack
    (a tenant registers a server folder by path only inside ATTUNE.packs.allowed_paths)."""
    return api.post(url, files={"file": ("pack.tar.gz", tar_gz(folder), "application/gzip")})


def register_folder(api: ApiClient, folder: Path) -> dict[str, Any]:
    """Upload `folder`: the pack as the API returns it (201). The platform runs it from its
    own copy (`source_path`), so later changes to `folder` need `reload_folder`."""
    return api.data(upload_folder(api, folder), 201)


def reload_folder(api: ApiClient, pack_id: int, folder: Path) -> dict[str, Any]:
    """Upload `folder` as it is now to POST /api/v1/packs/{id}/reload: the pack (200)."""
    return api.data(upload_folder(api, folder, f"/api/v1/packs/{pack_id}/reload"), 200)


def wait_for_env(api: ApiClient, pack_id: int, timeout: float = 180.0) -> dict[str, Any]:
    """GET /api/v1/packs/{id} until env_status leaves `building`; the pack."""
    seen: dict[str, Any] = {}

    def settled() -> dict[str, Any] | None:
        seen.update(api.data(api.get(f"/api/v1/packs/{pack_id}"), 200))
        return dict(seen) if seen["env_status"] != "building" else None

    return wait_until(settled, timeout, interval=0.3, message=lambda: (
        f"pack {pack_id}'s environment to be built (env_status {seen.get('env_status')!r})"))


def execute(api: ApiClient, action: str, parameters: dict[str, Any] | None = None,
            timeout: float = 120.0) -> dict[str, Any]:
    """POST /api/v1/executions and wait for the end; the final execution."""
    created = api.data(api.post("/api/v1/executions",
                                json={"action": action, "parameters": parameters or {}}), 201)
    return wait_for_execution(api, created["id"], timeout=timeout)


def start(api: ApiClient, action: str, parameters: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """POST /api/v1/executions without waiting."""
    return api.data(api.post("/api/v1/executions",
                             json={"action": action, "parameters": parameters or {}}), 201)


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingServer:
    """Where it listens, what it received, and how it answers (path → (status, body, delay)).
    `url` is on 127.0.0.1 (the http runner's allowed test ports); `sandbox_url` on this
    machine's own address, which sandboxed actions may reach (config.e2e.yaml)."""

    url: str
    sandbox_url: str = ""
    received: list[Recorded] = field(default_factory=list)
    routes: dict[str, tuple[int, Any, float]] = field(default_factory=dict)


def allowed_test_ports() -> range:
    """The widest 127.0.0.1 port range config.e2e.yaml's ATTUNE.http_runner.allow opens: the
    platform's http runner may reach a test server there (and nowhere else on loopback)."""
    section = load_config_with(E2E_CONFIG, dict(os.environ))["ATTUNE"]["http_runner"]
    loopback = ipaddress.ip_network("127.0.0.1/32")
    ranges = [range(e.ports[0], e.ports[1] + 1)
              for e in HttpRunnerSettings.from_mapping(section).policy.allow
              if e.network == loopback and e.ports]
    return max(ranges, key=len)


def _bind_allowed_port(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on the first free port of `allowed_test_ports()` (parallel sessions share it)."""
    for port in allowed_test_ports():
        try:
            return ThreadingHTTPServer(("0.0.0.0", port), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError(f"every port of {allowed_test_ports()} is in use")


@contextmanager
def recording_server() -> Iterator[RecordingServer]:
    """A local HTTP server the test controls, on a port the e2e platform's http runner may
    reach (`allowed_test_ports`); unknown paths answer 200 {"ok": true}."""
    state = RecordingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.received.append(Recorded(self.command, self.path, dict(self.headers), body))
            status, answer, delay = state.routes.get(self.path, (200, {"ok": True}, 0.0))
            time.sleep(delay)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Served-By", "attune-tests")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    httpd = _bind_allowed_port(Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    state.sandbox_url = f"http://{own_addresses()[0]}:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
