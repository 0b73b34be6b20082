"""The sandbox's root is read-only (code writes only where a limit bounds it) and its loopback
is up before its network is attached (issue #14)."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import pytest

from runners import sandbox as sandboxes
from runners.base import Outcome
from runners.sandbox import Limits, SandboxError
from runners.shell import ShellRunner
from tests.support.e2e import wait_until

LIMITS = Limits(memory_mb=256, processes=16, file_size_mb=4, tmp_mb=8)


@pytest.fixture
def limited(make_request):
    def make(**overrides):
        request = make_request(None, **overrides)
        return dataclasses.replace(request, sandbox=dataclasses.replace(request.sandbox,
                                                                        limits=LIMITS))
    return make


def test_writing_outside_tmp_and_home_fails_read_only(write, limited, pack_dir):
    # The folder holding the wrappers' mount point exists only as bwrap made it, on the root.
    made = Path(sandboxes.RUNTIME[0]).parent
    entry = write("actions/write.sh", """
        for path in /hostile "$PWD/hostile" "$1/hostile" /tmp/ok "$HOME/ok"; do
          if out=$( ( : > "$path" ) 2>&1); then echo "$path ok"; else echo "$path ${out##*: }"; fi
        done
    """.replace("$1", str(made)))
    request = dataclasses.replace(limited(), entry_point=entry, runner_type="shell")
    result = ShellRunner().run(request)
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.stdout.split("\n") == [
        "/hostile Read-only file system", f"{pack_dir}/hostile Read-only file system",
        f"{made}/hostile Read-only file system", "/tmp/ok ok", "/home/attune/ok ok", ""]
    assert not (pack_dir / "hostile").exists() and not (made / "hostile").exists()


def test_the_loopback_wait_returns_once_it_is_up_and_fails_when_it_never_is():
    with subprocess.Popen(["unshare", "--net", "sleep", "30"]) as down:
        try:
            wait_until(lambda: Path(f"/proc/{down.pid}/comm").read_text() == "sleep\n",
                       timeout=5, interval=0.01, message="unshare to make its namespace")
            started = time.monotonic()
            with pytest.raises(SandboxError, match="loopback never came up"):
                sandboxes._wait_for_loopback(down.pid, time.monotonic() + 0.3)
            assert time.monotonic() - started >= 0.3  # it waited for it
        finally:
            down.kill()
    with subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && sleep 30"]) \
            as up:
        try:
            sandboxes._wait_for_loopback(up.pid, time.monotonic() + 5)
        finally:
            up.kill()
    with pytest.raises(SandboxError, match="exited before"):
        sandboxes._wait_for_loopback(up.pid, time.monotonic() + 1)
