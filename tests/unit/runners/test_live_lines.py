"""Live output at the runner: lines reach `RunRequest.output_lines` while the action still runs.

Each action prints a line, then waits until the test has received it (a file the test writes
into the pack folder, which the sandbox shows), then prints another: a runner that handed lines
over only at the end would leave the action waiting until its deadline, and the run would fail.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runners.base import Outcome, OutputLines
from runners.python import PythonRunner
from runners.shell import ShellRunner


class Lines:
    """Collects the lines; writes `seen` into the pack folder once `first` arrived."""

    def __init__(self, pack_dir: Path) -> None:
        self.pack_dir = pack_dir
        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()

    def send(self, stream: str, lines: list[bytes], cut: bool) -> None:
        with self.lock:
            self.got += [(stream, line, cut) for line in lines]
        if b"first" in lines:
            seen = self.pack_dir / "seen"
            seen.write_text("yes")
            seen.chmod(0o644)


PYTHON = """
    import os, sys, time
    print("first")  # no flush: the wrapper makes stdout line-buffered
    deadline = time.monotonic() + 20
    while not os.path.exists("seen"):
        if time.monotonic() > deadline:
            sys.exit("the first line never reached the worker while running")
        time.sleep(0.01)
    print("oops", file=sys.stderr)
    print("second")
"""

SHELL = """
    #!/bin/sh
    echo first
    i=0
    while [ ! -e seen ]; do
        i=$((i + 1)); [ $i -gt 2000 ] && { echo never seen >&2; exit 1; }
        sleep 0.01
    done
    echo oops >&2
    printf second
"""


@pytest.mark.parametrize("runner, name, source", [
    (PythonRunner, "live.py", PYTHON), (ShellRunner, "live.sh", SHELL)])
def test_lines_arrive_while_the_action_runs_in_order_per_stream(
        write, make_request, pack_dir, runner, name, source):
    lines = Lines(pack_dir)
    entry = write(f"actions/{name}", source)
    request = make_request(entry, runner_type="shell" if name.endswith(".sh") else "python",
                           output_lines=OutputLines(lines.send, 100))
    result = runner().run(request)
    assert result.outcome is Outcome.SUCCEEDED, result
    assert [(s, line) for s, line, _ in lines.got if s == "stdout"] == [
        ("stdout", b"first"), ("stdout", b"second")]
    assert [(s, line) for s, line, _ in lines.got if s == "stderr"] == [("stderr", b"oops")]
    assert "first" in result.stdout and "second" in result.stdout  # the result as before


def test_without_a_listener_the_run_is_as_before(write, make_request):
    entry = write("actions/plain.sh", "#!/bin/sh\necho one\necho two\n")
    result = ShellRunner().run(make_request(entry, runner_type="shell"))
    assert result.stdout == "one\ntwo\n"
