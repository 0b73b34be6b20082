"""The container runner against the real Docker engine of scripts/docker.sh (T3.17).

Nothing is mocked. When the engine does not answer, the fixture starts it with the project's
own script; if that fails too, every test here FAILS (a broken CI setup must never pass as a
skip).
"""

from __future__ import annotations

import contextlib
import grp
import io
import os
import random
import shutil
import socket
import stat
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import docker
import eventlet
import pytest
import requests
from docker.errors import DockerException, ImageNotFound

from runners.base import Outcome, RunRequest
from runners.container import PROJECT_SOCKET, ContainerRunner, docker_client, remove_orphans
from runners.container_policy import ContainerPolicy
from tests.support.e2e import wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DOCKER_SCRIPT = PROJECT_ROOT / "scripts" / "docker.sh"
CONTAINER_PACK = PROJECT_ROOT / "tests" / "fixtures" / "packs" / "container_pack"
IMAGE = "python:3.11-slim"

pytestmark = pytest.mark.integration


def _connect() -> docker.DockerClient | None:
    try:
        client = docker_client()
        client.ping()
        return client
    except (DockerException, requests.RequestException):
        return None


@pytest.fixture(scope="module")
def docker_engine() -> docker.DockerClient:
    """The project's engine with the local python image; started by scripts/docker.sh if
    down. Fails (never skips) when it cannot be had."""
    client = _connect()
    if client is None or not _has_image(client):
        done = subprocess.run(["bash", str(DOCKER_SCRIPT), "start"], capture_output=True,
                              text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"scripts/docker.sh start failed:\n{done.stdout}\n{done.stderr}")
        client = _connect()
    if client is None:
        pytest.fail("the Docker engine does not answer even after scripts/docker.sh start")
    if not _has_image(client):
        pytest.fail(f"the engine has no {IMAGE} image after scripts/docker.sh start")
    return client


def _has_image(client: docker.DockerClient) -> bool:
    try:
        client.images.get(IMAGE)
        return True
    except ImageNotFound:
        return False


@pytest.fixture
def execution_id() -> int:
    """Unique per test, so leak checks by label see only this test's containers."""
    return random.randint(10**8, 10**9)


def left_behind(client: docker.DockerClient, execution_id: int) -> list:
    return client.containers.list(all=True,
                                  filters={"label": f"attune.execution_id={execution_id}"})


def make_request(execution_id: int, entry: Path | None, working_dir: Path = CONTAINER_PACK,
                 **overrides) -> RunRequest:
    values = {
        "execution_id": execution_id, "action_ref": "container_pack.test",
        "runner_type": "container", "working_dir": working_dir, "entry_point": entry,
        "parameters": {}, "timeout_s": 60, "kill_grace_s": 1,
        "container_config": {"image": IMAGE},
        "context": {"execution_id": execution_id, "action_ref": "container_pack.test",
                    "attempt": 1, "item": None, "item_index": None,
                    "api_url": "http://127.0.0.1:9", "token": "execution-token-value"},
    }
    values.update(overrides)
    return RunRequest(**values)


def pack_action(name: str) -> Path:
    return CONTAINER_PACK / "actions" / name


@pytest.fixture
def scratch_pack(tmp_path: Path) -> Path:
    """A pack folder the test writes its own scripts into."""
    (tmp_path / "actions").mkdir()
    (tmp_path / "pack.yaml").write_text("ref: scratch\nversion: 1.0.0\n")
    return tmp_path


def write(folder: Path, relative: str, source: str) -> Path:
    path = folder / relative
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def test_the_action_runs_isolated_with_its_pack_read_only_and_its_stdin_document(
    docker_engine, execution_id
):
    request = make_request(
        execution_id, pack_action("inspect.py"), parameters={"message": "hello container"},
        container_config={"image": IMAGE, "memory": "128m", "cpus": 0.5},
    )
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.SUCCEEDED, result
    seen = result.output
    assert seen["message"] == "hello container"
    assert seen["context_keys"] == ["action_ref", "api_url", "attempt", "execution_id", "item",
                                    "item_index", "token"]
    assert seen["cwd"] == "/action"
    assert "inspect.py" in seen["files"]
    assert seen["python"].startswith("3.11")
    # limits
    assert seen["memory_limit"] == str(128 * 1024 * 1024)
    assert seen["cpu_quota"] == "50000"
    # no privileges: every capability dropped, no-new-privileges
    assert seen["cap_eff"] == "0000000000000000"
    assert seen["no_new_privs"] == "1"
    # no network: only loopback, and a connect fails locally (ENETUNREACH)
    assert seen["interfaces"] == ["lo"]
    assert seen["network"] == "OSError:101"
    # the pack and the root filesystem are read-only; /tmp is writable
    assert (seen["action_writable"], seen["root_writable"], seen["tmp_writable"]) == (
        False, False, True)
    assert not seen["env_has_message"]  # parameters arrive on stdin, not in the environment
    assert result.stderr == "message: hello container\n"
    assert (result.exit_code, result.error) == (0, None)
    assert not (CONTAINER_PACK / "written.txt").exists()
    assert left_behind(docker_engine, execution_id) == []


def test_the_container_is_created_with_the_declared_limits_and_removed_on_cancel(
    docker_engine, execution_id
):
    runner = ContainerRunner()
    request = make_request(execution_id, pack_action("sleep.py"), parameters={"seconds": 120},
                           container_config={"image": IMAGE, "memory": "96m", "cpus": 0.25})
    run = eventlet.spawn(runner.run, request)
    container = wait_until(lambda: (left_behind(docker_engine, execution_id) or [None])[0],
                           timeout=30, message="the container to exist")
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 96 * 1024 * 1024
    assert host["MemorySwap"] == 96 * 1024 * 1024  # no swap on top
    assert host["NanoCpus"] == 250_000_000
    assert host["NetworkMode"] == "none"
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == 256
    assert host["Binds"] == [f"{CONTAINER_PACK}:/action:ro"]
    assert container.attrs["Config"]["User"] == "65534:65534"  # never the image's USER
    assert container.attrs["Config"]["Labels"]["attune.action_ref"] == "container_pack.test"
    runner.cancel()
    result = run.wait()
    assert result.outcome is Outcome.CANCELED
    assert result.error == {"type": "canceled", "message": "Execution canceled"}
    assert left_behind(docker_engine, execution_id) == []


def test_a_nonzero_exit_fails_with_its_code_and_stderr(docker_engine, execution_id):
    request = make_request(execution_id, pack_action("fail.py"), parameters={"exit_code": 3})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 3
    assert result.stderr == "failing with 3\n"
    assert result.error == {"type": "nonzero_exit", "message": "Action exited with code 3"}
    assert left_behind(docker_engine, execution_id) == []


def test_a_timeout_stops_and_removes_the_container(docker_engine, execution_id):
    request = make_request(execution_id, pack_action("sleep.py"), parameters={"seconds": 120},
                           timeout_s=4)
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "timeout", "message": "Action timed out after 4 s"}
    assert result.stdout == "sleeping 120\n"  # output up to the timeout is kept
    assert left_behind(docker_engine, execution_id) == []


def test_an_action_that_closes_its_output_early_still_obeys_the_timeout(
    docker_engine, execution_id, scratch_pack
):
    entry = write(scratch_pack, "actions/quiet.py", """
        import os, time
        print("closing", flush=True)
        os.close(1)
        os.close(2)
        time.sleep(120)
    """)
    request = make_request(execution_id, entry, working_dir=scratch_pack, timeout_s=4)
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "timeout"
    assert result.stdout == "closing\n"
    assert left_behind(docker_engine, execution_id) == []


def test_exceeding_the_memory_limit_is_reported_as_oom(docker_engine, execution_id, scratch_pack):
    entry = write(scratch_pack, "actions/hog.py", """
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    """)
    request = make_request(execution_id, entry, working_dir=scratch_pack,
                           container_config={"image": IMAGE, "memory": "64m"})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 137
    assert result.error == {"type": "oom_killed",
                            "message": "The container exceeded its memory limit (64m)"}
    assert left_behind(docker_engine, execution_id) == []


def test_secrets_come_on_stdin_and_are_masked_in_the_output(docker_engine, execution_id,
                                                             scratch_pack):
    entry = write(scratch_pack, "actions/leak.py", """
        import json, os, sys
        doc = json.load(sys.stdin)
        print(json.dumps({"key": doc["secrets"]["api_key"],
                          "in_env": any("s3cr3t" in v for v in os.environ.values())}))
    """)
    request = make_request(execution_id, entry, working_dir=scratch_pack,
                           secrets={"api_key": "s3cr3t-value"})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"key": "***", "in_env": False}
    assert "s3cr3t" not in result.stdout


def test_an_inline_action_folder_is_mounted_too(docker_engine, execution_id, tmp_path):
    entry = write(tmp_path, "action", """
        #!/usr/bin/env python3
        import json, sys
        print(json.dumps(json.load(sys.stdin)["parameters"]))
    """)
    request = make_request(execution_id, entry, working_dir=tmp_path, parameters={"n": 1})
    result = ContainerRunner().run(request)
    assert (result.outcome, result.output) == (Outcome.SUCCEEDED, {"n": 1})


def test_a_missing_image_with_pull_never_fails_without_a_container(docker_engine, execution_id):
    request = make_request(execution_id, pack_action("fail.py"),
                           container_config={"image": "attune-test/absent:never", "pull": "never"})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "image_missing"
    assert left_behind(docker_engine, execution_id) == []


def test_an_image_that_cannot_be_pulled_fails_clearly(docker_engine, execution_id):
    request = make_request(execution_id, pack_action("fail.py"),
                           container_config={"image": "127.0.0.1:9/attune-test/absent:1"})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "image_pull_failed"
    assert "127.0.0.1:9/attune-test/absent:1" in result.error["message"]
    assert left_behind(docker_engine, execution_id) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry(tmp_path: Path):
    """A real local registry (Debian's docker-registry, installed by scripts/docker.sh)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed; run scripts/docker.sh start")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(textwrap.dedent(f"""
        version: 0.1
        log: {{level: error}}
        storage: {{filesystem: {{rootdirectory: {tmp_path / 'storage'}}}}}
        http: {{addr: 127.0.0.1:{port}}}
    """))
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=30, message="the local registry to answer")
        yield {"address": f"127.0.0.1:{port}", "process": process}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_missing_image_is_pulled_once_and_then_runs_from_the_cache(
    docker_engine, execution_id, registry
):
    repository = f"{registry['address']}/attune-test/python"
    tag = uuid.uuid4().hex[:12]
    image = f"{repository}:{tag}"
    docker_engine.images.get(IMAGE).tag(repository, tag)
    pushed = docker_engine.images.push(repository, tag=tag)
    assert '"error"' not in pushed, pushed
    docker_engine.images.remove(image)
    with pytest.raises(ImageNotFound):
        docker_engine.images.get(image)
    try:
        request = make_request(execution_id, pack_action("fail.py"), parameters={"exit_code": 0},
                               container_config={"image": image})
        result = ContainerRunner().run(request)
        assert result.outcome is Outcome.SUCCEEDED, result
        docker_engine.images.get(image)  # pulled, and kept
        # With the registry gone, the next run must use the cached image (no pull).
        registry["process"].terminate()
        registry["process"].wait(10)
        again = ContainerRunner().run(make_request(
            execution_id, pack_action("fail.py"), parameters={"exit_code": 0},
            container_config={"image": image}))
        assert again.outcome is Outcome.SUCCEEDED, again
        assert left_behind(docker_engine, execution_id) == []
    finally:
        with contextlib.suppress(ImageNotFound):
            docker_engine.images.remove(image)


def test_killing_the_run_greenthread_removes_the_container(docker_engine, execution_id):
    """The worker shutting down kills its greenthreads: the container must go with them."""
    request = make_request(execution_id, pack_action("sleep.py"), parameters={"seconds": 120})
    run = eventlet.spawn(ContainerRunner().run, request)
    wait_until(lambda: left_behind(docker_engine, execution_id), timeout=30,
               message="the container to exist")
    run.kill()
    wait_until(lambda: left_behind(docker_engine, execution_id) == [], timeout=30,
               message="the container to be removed")


def test_a_cancel_before_the_start_creates_nothing(docker_engine, execution_id):
    runner = ContainerRunner()
    runner.cancel()
    result = runner.run(make_request(execution_id, pack_action("sleep.py")))
    assert result.outcome is Outcome.CANCELED
    assert left_behind(docker_engine, execution_id) == []


def test_containers_of_dead_workers_are_swept(docker_engine, execution_id):
    dead_pid = _exited_pid()
    labels = {"attune.managed": "true", "attune.execution_id": str(execution_id),
              "attune.worker_pid": str(dead_pid), "attune.worker_host": socket.gethostname()}
    orphan = docker_engine.containers.create(IMAGE, ["sleep", "60"], labels=labels,
                                      network_mode="none")
    alive = docker_engine.containers.create(
        IMAGE, ["sleep", "60"], network_mode="none",
        labels={**labels, "attune.worker_pid": str(os.getpid())})
    try:
        removed = remove_orphans(docker_engine)
        assert orphan.id in removed
        assert alive.id not in removed
        assert [c.id for c in left_behind(docker_engine, execution_id)] == [alive.id]
    finally:
        alive.remove(force=True)
        with contextlib.suppress(DockerException):
            orphan.remove(force=True)


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(process.pid, 0)
        except ProcessLookupError:
            return process.pid
        time.sleep(0.05)
    raise AssertionError("the exited process still exists")


# -- who the container runs as, the operator's maximum, the engine's socket (issue 14) --------
ROOT_IMAGE = "attune-test/user-root:1"
ID_COMMAND = ["sh", "-c", "echo $(id -u):$(id -g)"]


@pytest.fixture(scope="module")
def root_user_image(docker_engine: docker.DockerClient) -> str:
    """The local python image with an explicit `USER root`, built once without any network."""
    dockerfile = f"FROM {IMAGE}\nUSER root\n".encode()
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile), tag=ROOT_IMAGE, pull=False,
                        network_mode="none", rm=True)
    assert docker_engine.images.get(ROOT_IMAGE).attrs["Config"]["User"] == "root"
    return ROOT_IMAGE


def run_id(execution_id: int, image: str, command: list[str] = ID_COMMAND, **overrides):
    request = make_request(execution_id, None, container_config={
        "image": image, "command": command}, **overrides)
    return ContainerRunner().run(request)


def test_a_root_image_runs_as_the_unprivileged_user(docker_engine, execution_id, root_user_image):
    result = run_id(execution_id, root_user_image)
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.stdout == "65534:65534\n"
    configured = run_id(execution_id, root_user_image,
                        container_policy=ContainerPolicy(user="4321:4322"))
    assert configured.stdout == "4321:4322\n", configured
    assert left_behind(docker_engine, execution_id) == []


def test_the_image_user_is_kept_when_the_pack_asks_and_the_operator_allows(
    docker_engine, execution_id, root_user_image
):
    result = run_id(execution_id, root_user_image, keep_image_user=True,
                    container_policy=ContainerPolicy(allow_image_user=True))
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.stdout == "0:0\n"
    # the rest of the hardening stays: root without a single capability
    caps = run_id(execution_id, root_user_image, ["sh", "-c", "grep CapEff /proc/self/status"],
                  keep_image_user=True, container_policy=ContainerPolicy(allow_image_user=True))
    assert caps.stdout.split() == ["CapEff:", "0000000000000000"], caps


def test_a_pack_asking_for_its_image_user_is_refused_unless_allowed(
    docker_engine, execution_id, root_user_image
):
    result = run_id(execution_id, root_user_image, keep_image_user=True)
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "image_user_refused"
    assert "ATTUNE.container.allow_image_user" in result.error["message"]
    assert left_behind(docker_engine, execution_id) == []


@pytest.mark.parametrize(("asked", "says"), [
    ({"memory": "8g"}, "container_config.memory: 8g is above the operator's maximum of 4g"),
    ({"cpus": 8}, "container_config.cpus: 8 is above the operator's maximum of 4"),
])
def test_an_action_asking_above_the_maximum_fails_before_any_container(
    docker_engine, execution_id, asked, says
):
    since = int(time.time()) - 1
    request = make_request(execution_id, pack_action("inspect.py"), parameters={"message": "m"},
                           container_config={"image": IMAGE, **asked})
    result = ContainerRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "resource_limit", "message": says + (
        " (ATTUNE.container.maximum.memory)" if "memory" in asked
        else " (ATTUNE.container.maximum.cpus)")}
    # no container was ever created for it (not only: none left)
    seen = list(docker_engine.api.events(decode=True, since=since, until=int(time.time()) + 1,
                                  filters={"label": f"attune.execution_id={execution_id}"}))
    assert seen == []


def test_the_engine_socket_is_for_root_and_the_services_group_only(docker_engine):
    """scripts/docker.sh leaves the socket 0660 root:attune (root:root without that group)
    in a folder closed to everyone else; another uid cannot even reach it."""
    subprocess.run(["bash", str(DOCKER_SCRIPT), "start"], check=True, capture_output=True,
                   timeout=900)
    group = subprocess.run(["getent", "group", "attune"], capture_output=True, text=True,
                           check=False).stdout.split(":")[0] or "root"
    info, folder = PROJECT_SOCKET.stat(), PROJECT_SOCKET.parent.stat()
    assert (info.st_uid, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)) == (
        0, group, 0o660)
    assert folder.st_uid == 0 and grp.getgrgid(folder.st_gid).gr_name == group
    assert stat.S_IMODE(folder.st_mode) == (0o700 if group == "root" else 0o710)
    # the system's python: another uid cannot run the one under /root (pyenv)
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "no python3 in /usr/bin or /bin to probe the socket with"
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1]); print('connected')\n"
             "except OSError as exc:\n    print(type(exc).__name__)\n")
    outsider = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               python, "-c", probe, str(PROJECT_SOCKET)],
                              capture_output=True, text=True, timeout=30, check=True)
    assert outsider.stdout.strip() == "PermissionError"
    if group != "root":
        member = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                 f"--groups={grp.getgrnam(group).gr_gid}", python, "-c",
                                 probe, str(PROJECT_SOCKET)],
                                capture_output=True, text=True, timeout=30, check=True)
        assert member.stdout.strip() == "connected"
