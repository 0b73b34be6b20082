"""An action never outlives a worker killed with SIGKILL: the sandbox's watcher ends every
process inside when the worker's guard pipe closes (bwrap's own death signal cannot reach a
namespace it entered), and a warm server ends its forked runs when the worker's end closes."""

import signal
import subprocess
import sys
import textwrap

import pytest

from nameko_services.config import PROJECT_ROOT
from tests.support.factories import wait_until
from tests.support.sandboxes import open_dir
from tests.unit.runners.processes import marker_seconds, processes_with

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from runners import get_runner
    from runners.base import RunRequest
    from tests.support.sandboxes import sandbox_for

    pack, runner_type, marker = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    entry = pack / ("a.sh" if runner_type == "shell" else "a.py")
    if runner_type == "shell":
        entry.write_text(f"sleep {marker} & exec sleep {marker}1\\n")
    else:
        entry.write_text("import subprocess\\n"
                         f"subprocess.Popen(['sleep', '{marker}'])\\n"
                         f"subprocess.run(['sleep', '{marker}1'])\\n")
    entry.chmod(0o755)
    get_runner(runner_type)().run(RunRequest(
        execution_id=1, action_ref="t.a", runner_type=runner_type, working_dir=pack,
        entry_point=entry, timeout_s=300, sandbox=sandbox_for(pack / "state", pack)))
""")


@pytest.mark.parametrize("runner_type", ["shell", "python"])
def test_the_action_dies_with_a_worker_killed_by_sigkill(runner_type):
    marker = marker_seconds()
    with open_dir() as pack:
        worker = subprocess.Popen([sys.executable, "-c", SCRIPT, str(pack), runner_type, marker],
                                  cwd=PROJECT_ROOT)
        try:
            wait_until(lambda: len(processes_with(marker)) >= 2, deadline=20)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            wait_until(lambda: not processes_with(marker), deadline=20)
        finally:
            if worker.poll() is None:
                worker.kill()
            for pid in processes_with(marker):  # never leave them behind, even on failure
                with open(f"/proc/{pid}/stat"):
                    subprocess.run(["kill", "-9", str(pid)], check=False)
