"""An action never outlives a worker killed with SIGKILL (PR_SET_PDEATHSIG)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from nameko_services.config import PROJECT_ROOT

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from runners.base import RunRequest
    from runners.shell import ShellRunner

    pack = Path(sys.argv[1])
    (pack / "a.sh").write_text("echo $$ > " + sys.argv[2] + "; exec sleep 120\\n")
    ShellRunner().run(RunRequest(execution_id=1, action_ref="t.a", runner_type="shell",
                                 working_dir=pack, entry_point=pack / "a.sh", timeout_s=300))
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


def test_the_action_dies_with_a_worker_killed_by_sigkill(tmp_path):
    pid_file = tmp_path / "action.pid"
    worker = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), str(pid_file)],
                              cwd=PROJECT_ROOT)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()), \
            "the action never started"
        action_pid = int(pid_file.read_text())
        assert alive(action_pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert wait_for(lambda: not alive(action_pid)), "the action outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
