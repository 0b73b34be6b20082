"""The e2e harness: the platform started exactly as the README says, once per session.

`attune up --config config.e2e.yaml --fresh` runs as a subprocess with ATTUNE_RUN_DIR set to a
fresh .attune/e2e-runs/<timestamp> (so every run keeps its service logs), and `attune down` stops
it at the end. Set ATTUNE_E2E_API_URL (and optionally ATTUNE_E2E_RUN_DIR) to test a platform you
started yourself instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy.engine import make_url

from tests.support.e2e import (
    E2E_CONFIG,
    PROJECT_ROOT,
    ApiClient,
    NotificationSocket,
    load_config_with,
    log_tails,
    register_user,
)
from tests.support.network import own_addresses

CONFIG = E2E_CONFIG
ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"
UP_TIMEOUT_SECONDS = 240
DOWN_TIMEOUT_SECONDS = 90
KEEP_RUNS = 20  # earlier run dirs kept for their logs
# This machine's own address: sandboxed actions may reach test servers there (the e2e
# platform's ATTUNE.sandbox.allow_networks), as an operator would open a service.
SANDBOX_REACHABLE = own_addresses()[0]


@dataclass
class RunningPlatform:
    """Where the platform under test lives."""

    api_url: str
    ws_url: str
    run_dir: Path
    config: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)
    up_output: str = ""

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an e2e test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed e2e test reports where its platforms' logs are (the session's, or one of its
    own: `platform_of_its_own`), and their tails."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, running in getattr(item, "funcargs", {}).items():
        if isinstance(running, RunningPlatform):
            report.sections.append((f"logs of `{name}`",
                                    f"run dir: {running.run_dir}\n{log_tails(running.run_dir)}"))


def _urls(env: dict[str, str]) -> tuple[str, str]:
    section = load_config_with(CONFIG, env)["ATTUNE"]
    host = section["api_host"]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{host}:{section['api_port']}"
    return base, base.replace("http", "ws", 1) + "/ws"


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(ATTUNE), *args, "--config", str(CONFIG)], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def platform_of_its_own(name: str, port_offset: int, *up_args: str,
                        **extra_env: str) -> Iterator[RunningPlatform]:
    """A second platform for a package whose tests change how it runs (replicas, log format):
    `attune up --fresh *up_args` on config.e2e.yaml with the session's database and vhost names
    + `_<name>`, the session's port + `port_offset` (or ATTUNE_E2E_<NAME>_PORT) and a run dir of
    its own; `attune down` when the block ends."""
    seen = load_config_with(CONFIG, dict(os.environ))
    database = make_url(seen["ATTUNE"]["database_url"])
    broker = urlsplit(seen["AMQP_URI"])
    port = int(os.environ.get(f"ATTUNE_E2E_{name.upper()}_PORT")
               or int(seen["ATTUNE"]["api_port"]) + port_offset)
    run_dir = (PROJECT_ROOT / ".attune" / "e2e-runs"
               / (datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f") + f"-{name}"))
    env = {**os.environ, "ATTUNE_RUN_DIR": str(run_dir), "ATTUNE_API_PORT": str(port),
           "ATTUNE_DATABASE_URL": database.set(database=f"{database.database}_{name}")
           .render_as_string(hide_password=False),
           "ATTUNE_AMQP_URI": urlunsplit(broker._replace(path=f"{broker.path}_{name}")),
           "ATTUNE_E2E_SANDBOX_ALLOW": json.dumps([f"{SANDBOX_REACHABLE}/32"]), **extra_env}
    api_url, ws_url = _urls(env)
    run_dir.mkdir(parents=True)
    (run_dir / "api_url").write_text(api_url)
    running = RunningPlatform(api_url, ws_url, run_dir, CONFIG, env)
    up = _run(["up", "--fresh", *up_args], env, UP_TIMEOUT_SECONDS)
    running.up_output = up.stdout + up.stderr
    (run_dir / "up.out").write_text(running.up_output)
    try:
        if up.returncode != 0:
            pytest.fail(f"`attune up {' '.join(up_args)}` failed ({up.returncode}); logs in "
                        f"{run_dir}\n{running.up_output}")
        yield running
    finally:
        down = _run(["down"], env, DOWN_TIMEOUT_SECONDS)
        (run_dir / "down.out").write_text(down.stdout + down.stderr)



def _tidy_earlier_runs(runs: Path, api_url: str, keep: int = KEEP_RUNS) -> None:
    """Stop platforms an interrupted session left on *our* API URL; keep the newest run dirs.

    Runs on another URL (a parallel session with its own port, database and vhost) are left
    alone, and a run dir is only removed once nothing of it is running.
    """
    earlier = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    for run_dir in earlier:
        marker = run_dir / "api_url"
        same = marker.exists() and marker.read_text().strip() == api_url
        if same and any(run_dir.glob("pids/*.pid")):
            _run(["down"], {**os.environ, "ATTUNE_RUN_DIR": str(run_dir)}, DOWN_TIMEOUT_SECONDS)
    for run_dir in earlier[:-keep] if keep else earlier:
        if not any(run_dir.glob("pids/*.pid")):
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def platform() -> Iterator[RunningPlatform]:
    """The whole platform (gateway + four services) on config.e2e.yaml."""
    reuse = os.environ.get("ATTUNE_E2E_API_URL")
    if reuse:
        run_dir = Path(os.environ.get("ATTUNE_E2E_RUN_DIR", PROJECT_ROOT / ".attune" / "e2e"))
        yield RunningPlatform(reuse.rstrip("/"), reuse.rstrip("/").replace("http", "ws", 1)
                              + "/ws", run_dir, CONFIG)
        return
    runs = PROJECT_ROOT / ".attune" / "e2e-runs"
    run_dir = runs / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    env = {**os.environ, "ATTUNE_RUN_DIR": str(run_dir),
           "ATTUNE_E2E_SANDBOX_ALLOW": json.dumps([f"{SANDBOX_REACHABLE}/32"])}
    api_url, ws_url = _urls(env)
    _tidy_earlier_runs(runs, api_url)
    run_dir.mkdir(parents=True)
    (run_dir / "api_url").write_text(api_url)
    up = _run(["up", "--fresh"], env, UP_TIMEOUT_SECONDS)
    output = up.stdout + up.stderr
    (run_dir / "up.out").write_text(output)
    running = RunningPlatform(api_url, ws_url, run_dir, CONFIG, env, output)
    try:
        if up.returncode != 0:
            pytest.fail(f"`attune up` failed ({up.returncode}); logs in {run_dir}\n{output}")
        yield running
    finally:
        down = _run(["down"], env, DOWN_TIMEOUT_SECONDS)
        (run_dir / "down.out").write_text(down.stdout + down.stderr)


@pytest.fixture
def make_api(platform: RunningPlatform) -> Iterator[Callable[..., ApiClient]]:
    """Factory: `make_api()` a new tenant's admin; `make_api(role, admin=api)` a user of
    `admin`'s tenant with that role."""
    made: list[ApiClient] = []

    def make(role: str = "admin", admin: ApiClient | None = None) -> ApiClient:
        if admin is None:
            assert role == "admin", "a user with another role needs admin= (its tenant)"
            client = register_user(platform.api_url, ws_url=platform.ws_url)
        else:
            client = admin.create_user(role)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def api(make_api: Callable[..., ApiClient]) -> ApiClient:
    """A fresh tenant's admin for this test."""
    return make_api()


@pytest.fixture
def make_ws() -> Iterator[Callable[..., NotificationSocket]]:
    """Factory: `make_ws(api)` a /ws connection authenticated as `api`; closed afterwards."""
    sockets: list[NotificationSocket] = []

    def make(client: ApiClient, **kwargs: Any) -> NotificationSocket:
        sock = NotificationSocket.connect(client.ws_url, client.token, **kwargs)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close()
