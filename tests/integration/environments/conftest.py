"""Fixtures for pack-environment tests: fixture packs, a local HTTP server, the worker room's
fixtures (a tenant, a pack row, a running WorkerService), and the envs folder they use."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runners.environments import Environments
from tests.integration.worker.conftest import (  # noqa: F401 - fixtures used by these tests
    api_server,
    current,
    finished,
    make_action,
    make_execution,
    news,
    pack,
    schedule,
    tenant,
    worker,
    worker_config,
    write,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FIXTURE_PACKS = PROJECT_ROOT / "tests" / "fixtures" / "packs"
# Kept between runs (git-ignored), so a rerun reuses the fixture packs' environments.
SHARED_ENVS = PROJECT_ROOT / ".attune" / "test" / "shared-envs"


@pytest.fixture(scope="session")
def shared_envs() -> Environments:
    """Environments cached across test runs: builds happen once per machine."""
    return Environments(SHARED_ENVS)


@pytest.fixture
def fresh_envs(tmp_path: Path) -> Environments:
    """An empty environments root: whatever the test ensures is built now."""
    return Environments(tmp_path / "envs")


@pytest.fixture
def copy_fixture(tmp_path: Path):
    """copy_fixture("node_axios") → a writable copy of the fixture pack."""

    def copy(name: str) -> Path:
        target = tmp_path / "packs" / name
        shutil.copytree(FIXTURE_PACKS / name, target,
                        ignore=shutil.ignore_patterns("node_modules"))
        return target

    return copy


@pytest.fixture
def http_server():
    """GET anything → {"path": ..., "ok": true}, from a local server the test starts."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"path": self.path, "ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
