"""deploy/Dockerfile builds an image that runs a role: a worker started from it (the command
compose.yaml and the Kubernetes manifests give it) answers the exec probe `attune health --role
worker` run inside the same container, as an orchestrator runs it, against this machine's
PostgreSQL and RabbitMQ (the test database and vhost).

Needs a Docker engine ($DOCKER_HOST, scripts/docker.sh) and the image's base
(deploy/base-image.sh builds it where no registry is reachable); skipped only when no engine
answers. The first build takes minutes (apt and PyPI); later ones reuse the engine's cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from nameko_services.config import PROJECT_ROOT, keys_path
from tests.integration.rows import wait_until

pytestmark = pytest.mark.integration

IMAGE = "attune:test"
UID = 10001  # the image's attune user
BUILD_TIMEOUT = 1800
# What the sandbox needs inside a container (compose.yaml's `security_opt` and `devices`).
SANDBOX_OPTIONS = ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                   "--security-opt", "systempaths=unconfined", "--device", "/dev/net/tun"]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=check)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH")
    if docker("version", "--format", "{{.Server.Version}}", check=False).returncode != 0:
        pytest.skip(f"no Docker engine answers at {os.environ.get('DOCKER_HOST', 'the default')}")
    base = subprocess.run([str(PROJECT_ROOT / "deploy" / "base-image.sh")], capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT, check=False)
    assert base.returncode == 0, base.stderr[-3000:]
    # --network host: the engine here runs without a bridge; apt and pip reach their registries.
    built = subprocess.run(["docker", "build", "--network", "host", "-f", "deploy/Dockerfile",
                            "-t", IMAGE, "."], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT, check=False,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert built.returncode == 0, (built.stdout + built.stderr)[-5000:]
    return IMAGE


def test_the_image_runs_as_the_unprivileged_user_with_the_attune_command(image):
    who = docker("run", "--rm", image, "id", "-u")
    assert who.stdout.strip() == str(UID)
    helped = docker("run", "--rm", image, "attune", "--help")
    assert "health" in helped.stdout and "migrate" in helped.stdout
    assert docker("run", "--rm", image, "bwrap", "--version").stdout.startswith("bubblewrap")


def test_a_worker_in_the_image_answers_its_exec_probe(image, settings, tmp_path, engine):
    # The keys file, the container user's alone, mounted where the image looks for it.
    keys = tmp_path / "keys.env"
    shutil.copyfile(keys_path(), keys)
    os.chown(keys, UID, UID)
    keys.chmod(0o600)
    name = f"attune-test-worker-{uuid.uuid4().hex[:8]}"
    env = {"ATTUNE_DATABASE_URL": f"postgresql+psycopg2://attune@127.0.0.1:5432/"
                                  f"{settings.database_url.rsplit('/', 1)[1]}",
           "ATTUNE_AMQP_URI": "amqp://attune@127.0.0.1:5672/"
                              f"{settings.amqp_uri.rsplit('/', 1)[1]}"}
    docker("run", "-d", "--name", name, "--network", "host", *SANDBOX_OPTIONS,
           "-v", f"{keys}:/run/secrets/attune_keys:ro",
           *[arg for key, value in env.items() for arg in ("-e", f"{key}={value}")],
           image, "nameko", "run", "--config", "nameko.yaml",
           "nameko_services.worker.service:WorkerService")
    try:
        def probe() -> subprocess.CompletedProcess:
            return docker("exec", name, "attune", "health", "--role", "worker", "--timeout", "5",
                          check=False, timeout=30)

        answer = wait_until(lambda: (p := probe()).returncode == 0 and p, deadline=90)
        assert json.loads(answer.stdout) == {"role": "worker", "status": "ok"}
        docker("stop", "--time", "30", name, timeout=60)
        # Stopped, its heartbeat goes (it marks itself offline): the probe says so, exit 1.
        after = docker("run", "--rm", "--network", "host", "-v",
                       f"{keys}:/run/secrets/attune_keys:ro",
                       *[arg for key, value in env.items() for arg in ("-e", f"{key}={value}")],
                       image, "attune", "health", "--role", "worker", "--timeout", "5",
                       check=False, timeout=60)
        assert after.returncode == 1, after.stdout + after.stderr
        assert json.loads(after.stdout)["status"].startswith("error: ")
    finally:
        logs = docker("logs", name, check=False).stderr[-3000:]
        docker("rm", "-f", name, check=False)
        keys.unlink()  # pytest keeps its temporary folders: no copy of the keys stays there
    assert "Traceback" not in logs, logs
