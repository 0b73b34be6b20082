"""`scaled`, a platform of its own for the replica tests (test_replicas, test_supervision;
test_second_host uses the session's `platform`): `attune up --replicas worker=3,executor=2,
sensor=2,notifier=2,gateway=2` with supervision on (ATTUNE_RESTART=true), on config.e2e.yaml
with its own database, vhost (the session's names + `_scale`), port (ATTUNE_E2E_SCALE_PORT,
default the session's + 100) and run dir; stopped with `attune down` after this package.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
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
from tests.support.e2e import (
    PROJECT_ROOT,
    ApiClient,
    load_config_with,
    log_tails,
    register_user,
)

REPLICAS = {"worker": 3, "executor": 2, "sensor": 2, "notifier": 2, "gateway": 2}


def attune(platform: RunningPlatform, *args: str,
           timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(ATTUNE), *args, "--config", str(platform.config)],
                          cwd=PROJECT_ROOT, env=platform.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def status(platform: RunningPlatform) -> dict[str, Any]:
    """`attune status --json` (whatever its exit code)."""
    return json.loads(attune(platform, "status", "--json").stdout)


def _scale_env() -> dict[str, str]:
    seen = load_config_with(CONFIG, dict(os.environ))
    database = make_url(seen["ATTUNE"]["database_url"])
    broker = urlsplit(seen["AMQP_URI"])
    port = int(os.environ.get("ATTUNE_E2E_SCALE_PORT") or int(seen["ATTUNE"]["api_port"]) + 100)
    run_dir = (PROJECT_ROOT / ".attune" / "e2e-runs"
               / (datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f") + "-scale"))
    return {**os.environ, "ATTUNE_RUN_DIR": str(run_dir), "ATTUNE_API_PORT": str(port),
            "ATTUNE_DATABASE_URL": database.set(database=f"{database.database}_scale")
            .render_as_string(hide_password=False),
            "ATTUNE_AMQP_URI": urlunsplit(broker._replace(path=f"{broker.path}_scale")),
            "ATTUNE_RESTART": "true",
            "ATTUNE_E2E_SANDBOX_ALLOW": json.dumps([f"{SANDBOX_REACHABLE}/32"])}


@pytest.fixture(scope="package")
def scaled() -> Iterator[RunningPlatform]:
    """The replicated, supervised platform."""
    env = _scale_env()
    api_url, ws_url = _urls(env)
    run_dir = PROJECT_ROOT / env["ATTUNE_RUN_DIR"]
    run_dir.mkdir(parents=True)
    (run_dir / "api_url").write_text(api_url)
    running = RunningPlatform(api_url, ws_url, run_dir, CONFIG, env)
    replicas = ",".join(f"{role}={n}" for role, n in REPLICAS.items())
    up = attune(running, "up", "--fresh", "--replicas", replicas, timeout=UP_TIMEOUT_SECONDS)
    running.up_output = up.stdout + up.stderr
    (run_dir / "up.out").write_text(running.up_output)
    try:
        if up.returncode != 0:
            pytest.fail(f"`attune up --replicas` failed ({up.returncode}); logs in {run_dir}\n"
                        f"{running.up_output}")
        yield running
    finally:
        down = attune(running, "down", timeout=DOWN_TIMEOUT_SECONDS)
        (run_dir / "down.out").write_text(down.stdout + down.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed test on the scaled platform reports where its logs are, and their tails."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("scaled")
    if report.failed and isinstance(running, RunningPlatform):
        report.sections.append(
            ("scaled platform's logs", f"run dir: {running.run_dir}\n"
                                       f"{log_tails(running.run_dir)}"))


@pytest.fixture
def tenant(scaled: RunningPlatform) -> Iterator[ApiClient]:
    client = register_user(scaled.api_url, ws_url=scaled.ws_url)
    yield client
    client.close()
