"""An action never outlives a worker killed with SIGKILL: cold ones by PR_SET_PDEATHSIG, warm
(forked) python ones because their fork server kills them when the worker's end closes."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nameko_services.config import PROJECT_ROOT

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from runners import get_runner
    from runners.base import RunRequest

    pack, pid_file, runner_type = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if runner_type == "shell":
        entry = pack / "a.sh"
        entry.write_text("echo $$ > " + pid_file + "; exec sleep 120\\n")
    else:
        entry = pack / "a.py"
        entry.write_text("import os, time\\nopen(%r, 'w').write(str(os.getpid()))\\n"
                         "time.sleep(120)\\n" % pid_file)
    get_runner(runner_type)().run(RunRequest(
        execution_id=1, action_ref="t.a", runner_type=runner_type, working_dir=pack,
        entry_point=entry, timeout_s=300))
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie awaiting its reaper is gone too
        return stat.read().split(")")[-1].split()[0] != "Z"


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().split(")")[-1].split()[1])


@pytest.mark.parametrize("runner_type", ["shell", "python"])
def test_the_action_dies_with_a_worker_killed_by_sigkill(tmp_path, runner_type):
    pid_file = tmp_path / "action.pid"
    worker = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(pid_file), runner_type],
        cwd=PROJECT_ROOT)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()), \
            "the action never started"
        action_pid = int(pid_file.read_text())
        assert alive(action_pid)
        # python: the action's parent is the worker's fork server, which must go too
        parent = parent_of(action_pid)
        assert (parent == worker.pid) == (runner_type == "shell")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert wait_for(lambda: not alive(action_pid)), "the action outlived its worker"
        assert wait_for(lambda: not alive(parent)), "the fork server outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
