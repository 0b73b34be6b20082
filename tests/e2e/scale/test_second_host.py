"""Issue 16 — a second host that shares no disk with the first runs uploaded packs.

A worker started with `attune up --roles worker` in a run dir of its own, inside a mount
namespace where the first host's run dir (the gateway's unpacked uploads, the first worker's
pack environments) is covered by an empty tmpfs. The first host's worker is stopped, so the
second must take the work: it fetches each pack from PostgreSQL into its own cache, builds
the pack's virtualenv / node_modules there, and runs the actions.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.support.e2e import PROJECT_ROOT
from tests.support.pack_envs import (
    copy_fixture_pack,
    execute,
    recording_server,
    register_folder,
    wait_for_env,
)
from tests.support.services import alive, bring_up, kill, pid_of, wait_gone

ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"
HIDE_AND_RUN = 'mount -t tmpfs -o mode=0700 hidden "$1"; shift; exec "$@"'


def attune(args: list[str], env: dict[str, str], *, hide: Path | None = None
           ) -> subprocess.CompletedProcess:
    """`attune ARGS`; with `hide`, in a new mount namespace where `hide` is an empty tmpfs
    (the processes it starts stay in that namespace)."""
    command = [str(ATTUNE), *args]
    if hide is not None:
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                   HIDE_AND_RUN, "sh", str(hide), *command]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=240, check=False)


def mounts_of(pid: int) -> list[str]:
    """The mount points a process sees (/proc/PID/mountinfo, field 5)."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines]


def test_a_worker_on_a_host_without_the_first_hosts_files_runs_uploaded_packs(
        api, platform, tmp_path):
    first_run = platform.run_dir.resolve()
    second_run = first_run.with_name(first_run.name + "-host2")
    shutil.rmtree(second_run, ignore_errors=True)
    env = {**(platform.env or os.environ), "ATTUNE_RUN_DIR": str(second_run)}
    config = ["--config", str(platform.config)]
    first_worker = pid_of(platform, "worker")
    try:
        up = attune(["up", "--roles", "worker", *config], env, hide=first_run)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "no gateway on this host" in up.stdout
        second_worker = int((second_run / "pids" / "worker.pid").read_text())
        assert alive(second_worker)
        # The second worker sees none of the first host's run dir: a tmpfs covers it.
        assert str(first_run) in mounts_of(second_worker)
        assert str(first_run) not in mounts_of(os.getpid())

        kill(platform, "worker", signal.SIGTERM)  # the second worker must take the work
        wait_gone(first_worker)

        python_pack = register_folder(api, copy_fixture_pack("py_requests_228", tmp_path))
        node_pack = register_folder(api, copy_fixture_pack("node_axios", tmp_path))
        for pack in (python_pack, node_pack):
            assert wait_for_env(api, pack["id"])["env_status"] == "ready", pack["ref"]

        with recording_server() as server:
            server.routes["/users/1"] = (200, {"id": 1, "name": "ada"}, 0.0)
            python_run = execute(api, "py_requests_228.which_requests",
                                 {"url": f"{server.sandbox_url}/users/1"})
            node_run = execute(api, "node_axios.fetch",
                               {"url": f"{server.sandbox_url}/users/1"})
        ran_on = f"{socket.gethostname()}:worker:{second_worker}"  # host:replica:pid
        assert python_run["status"] == "succeeded", python_run["result"]
        assert python_run["worker"] == ran_on
        output = python_run["result"]["output"]
        assert (output["requests_version"], output["body"]) == ("2.28.0", {"id": 1,
                                                                           "name": "ada"})
        assert Path(output["sys_prefix"]).is_relative_to(second_run / "envs" / "python")
        assert node_run["status"] == "succeeded", node_run["result"]
        assert node_run["worker"] == ran_on
        assert node_run["result"]["output"]["data"] == {"id": 1, "name": "ada"}

        # Both packs were fetched into the second host's own cache, named by their sha256.
        for pack in (python_pack, node_pack):
            cached = (second_run / "packs" / str(api.tenant_id) / pack["ref"]
                      / f"{pack['version']}-{pack['archive_sha256']}")
            assert (cached / "pack.yaml").is_file(), cached
        modules = (second_run / "packs" / str(api.tenant_id) / "node_axios"
                   / f"{node_pack['version']}-{node_pack['archive_sha256']}" / "node_modules")
        assert modules.resolve().is_relative_to(second_run / "envs" / "node")
    finally:
        down = attune(["down", *config], env)
        assert down.returncode == 0, down.stdout + down.stderr
        if not alive(first_worker):
            bring_up(platform)  # the session's platform whole again
