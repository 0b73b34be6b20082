"""`scaled`, a platform of its own for the replica tests (test_replicas, test_supervision;
test_second_host uses the session's `platform`): `attune up --replicas worker=3,executor=2,
sensor=2,notifier=2,gateway=2` with supervision on (ATTUNE_RESTART=true), on config.e2e.yaml
with its own database, vhost (the session's names + `_scale`), port (ATTUNE_E2E_SCALE_PORT,
default the session's + 100) and run dir; stopped with `attune down` after this package.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ATTUNE, RunningPlatform, platform_of_its_own
from tests.support.e2e import PROJECT_ROOT, ApiClient, register_user

REPLICAS = {"worker": 3, "executor": 2, "sensor": 2, "notifier": 2, "gateway": 2}


def attune(platform: RunningPlatform, *args: str,
           timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(ATTUNE), *args, "--config", str(platform.config)],
                          cwd=PROJECT_ROOT, env=platform.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def status(platform: RunningPlatform) -> dict[str, Any]:
    """`attune status --json` (whatever its exit code)."""
    return json.loads(attune(platform, "status", "--json").stdout)


@pytest.fixture(scope="package")
def scaled() -> Iterator[RunningPlatform]:
    """The replicated, supervised platform."""
    replicas = ",".join(f"{role}={n}" for role, n in REPLICAS.items())
    with platform_of_its_own("scale", 100, "--replicas", replicas,
                             ATTUNE_RESTART="true") as running:
        yield running


@pytest.fixture
def tenant(scaled: RunningPlatform) -> Iterator[ApiClient]:
    client = register_user(scaled.api_url, ws_url=scaled.ws_url)
    yield client
    client.close()
