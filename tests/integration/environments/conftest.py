"""Fixtures for pack-environment tests: fixture packs, a local HTTP server, the worker room's
fixtures (a tenant, a pack row, a running WorkerService), and the envs folder they use."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runners.environments import Environments, PackEnvironment
from runners.sandbox import Host, Sandbox
from tests.integration.worker.conftest import (  # noqa: F401 - fixtures used by these tests
    api_server,
    current,
    finished,
    make_action,
    make_execution,
    news,
    pack,
    schedule,
    worker,
    worker_config,
    write,
)
from tests.support.network import own_addresses
from tests.support.sandboxes import open_dir

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FIXTURE_PACKS = PROJECT_ROOT / "tests" / "fixtures" / "packs"
# Kept between runs (git-ignored), so a rerun reuses the fixture packs' environments.
SHARED_ENVS = PROJECT_ROOT / ".attune" / "test" / "shared-envs"
# Sandboxes reach this machine's own address (where `http_server` listens) as an operator's
# ATTUNE.sandbox.allow_networks would let them; loopback stays their own.
SERVER_ADDRESS = own_addresses()[0]
HOST = Host(state_dir=PROJECT_ROOT / ".attune" / "test" / "sandbox-envs",
            allowed_networks=(f"{SERVER_ADDRESS}/32",))


def sandbox(folder: Path, env: PackEnvironment | None = None) -> Sandbox:
    """The sandbox of a run of the pack in `folder` with its environment, network on."""
    shown = [str(folder)]
    if env is not None and env.python is not None:
        shown.append(str(env.python.parent.parent))
    if env is not None and env.node_modules is not None:
        shown.append(str(env.node_modules.parent))
    return Sandbox(host=HOST, owner=4242, read_only=tuple(shown), network=True)


@pytest.fixture(scope="session")
def shared_envs() -> Environments:
    """Environments cached across test runs: builds happen once per machine."""
    return Environments(SHARED_ENVS, HOST)


@pytest.fixture
def fresh_envs() -> Iterator[Environments]:
    """An empty environments root: whatever the test ensures is built now."""
    with open_dir() as root:
        yield Environments(root / "envs", HOST)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder the sandbox's uid can read (pytest's tmp_path is closed to it)."""
    with open_dir() as root:
        yield root


@pytest.fixture
def copy_fixture(open_tmp: Path):
    """copy_fixture("node_axios") → a writable copy of the fixture pack, readable by the
    sandbox."""

    def copy(name: str) -> Path:
        target = open_tmp / "packs" / name
        shutil.copytree(FIXTURE_PACKS / name, target,
                        ignore=shutil.ignore_patterns("node_modules"))
        for path in [open_tmp / "packs", *target.rglob("*"), target]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    return copy


@pytest.fixture
def http_server():
    """GET anything → {"path": ..., "ok": true}, from a server the test starts on this
    machine's own address (the sandbox's network may reach it, see HOST)."""

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

    httpd = ThreadingHTTPServer((SERVER_ADDRESS, 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://{SERVER_ADDRESS}:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
