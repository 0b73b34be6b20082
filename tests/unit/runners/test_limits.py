"""Sandbox limits end a run as `resource_limit` naming the limit: what programs print when the
kernel refuses a process, disk space or file size is recognised, a fork bomb stopped by its
timeout included; the sandbox's root is read-only; its loopback is up before its network is
attached (issue #14)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runners import sandbox as sandboxes
from runners.base import Outcome
from runners.process import exceeded_limit
from runners.sandbox import Limits
from runners.shell import ShellRunner

LIMITS = Limits(memory_mb=256, processes=16, file_size_mb=4, tmp_mb=8)
PROCESSES = "process limit (16 processes) exceeded"
DISK = "disk space limit (8 MB, each of /tmp and home) exceeded"
FILE_SIZE = "file size limit (4 MB) exceeded"
OPEN_FILES = f"open files limit ({LIMITS.open_files} files) exceeded"


@pytest.fixture
def limited(make_request):
    def make(**overrides):
        request = make_request(None, **overrides)
        return dataclasses.replace(request, sandbox=dataclasses.replace(request.sandbox,
                                                                        limits=LIMITS))
    return make


@pytest.mark.parametrize(("stderr", "expected"), [
    ("action.sh: fork: retry: Resource temporarily unavailable\n", PROCESSES),  # bash
    ("action.sh: fork: Resource temporarily unavailable\n", PROCESSES),
    ("sh: 1: Cannot fork\n", PROCESSES),  # dash
    ("Error: spawn sleep EAGAIN\n    at ChildProcess._handle.onexit\n", PROCESSES),  # node
    ("Error: spawnSync /bin/sh EAGAIN\n", PROCESSES),
    ('  File "action.py", line 5, in run\n    os.fork()\n'
     "BlockingIOError: [Errno 11] Resource temporarily unavailable\n", PROCESSES),
    ("    self.pid = _fork_exec(\n               ^^^^^^^^^^^\n"
     "BlockingIOError: [Errno 11] Resource temporarily unavailable\n", PROCESSES),
    ("OSError: [Errno 28] No space left on device\n", DISK),  # python
    ("Error: ENOSPC: no space left on device, write\n", DISK),  # node
    ("dd: error writing '/tmp/filler': No space left on device\n", DISK),
    ("OSError: [Errno 27] File too large\n", FILE_SIZE),  # python ignores SIGXFSZ
    ("Error: EFBIG: file too large, write\n", FILE_SIZE),  # node
    ("MemoryError\n", "memory limit (256 MB) exceeded"),
    ("action.sh: line 2:     5 File size limit exceededdd if=/dev/zero of=f\n", FILE_SIZE),
    ("OSError: [Errno 24] Too many open files: '/tmp/f'\n", OPEN_FILES),  # python
    ("Error: EMFILE: too many open files, open '/tmp/f'\n", OPEN_FILES),  # node
    # Not a limit: EAGAIN from a non-blocking socket, an ordinary error.
    ('    sock.recv(10)\nBlockingIOError: [Errno 11] Resource temporarily unavailable\n', None),
    ("ValueError: nope\n", None),
])
def test_what_a_refused_resource_prints_names_the_limit(limited, stderr, expected):
    assert exceeded_limit(limited(), 1, stderr) == expected


def test_v8s_fatal_error_under_a_memory_limit_is_the_memory_limit(limited):
    stderr = "\n\n#\n# Fatal error in , line 0\n# Check failed: allocation.\n#\n"
    assert exceeded_limit(limited(), -5, stderr) == "memory limit (256 MB) exceeded"
    assert exceeded_limit(limited(), 1, stderr) is None  # not a crash: not V8's fatal end


def test_a_signal_still_names_its_limit_first(limited):
    assert exceeded_limit(limited(), -25, "No space left on device") == FILE_SIZE


def test_a_shell_fork_bomb_stopped_by_its_timeout_is_a_resource_limit(write, limited):
    entry = write("actions/bomb.sh", "while :; do sleep 60 & done\n")
    request = dataclasses.replace(limited(), entry_point=entry, runner_type="shell",
                                  timeout_s=3, kill_grace_s=1)
    result = ShellRunner().run(request)
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "resource_limit",
                            "message": f"{PROCESSES}; stopped at the timeout (3 s)"}


def test_a_timeout_without_refused_forks_stays_a_timeout(write, limited):
    entry = write("actions/slow.sh", "sleep 60\n")
    request = dataclasses.replace(limited(), entry_point=entry, runner_type="shell",
                                  timeout_s=1, kill_grace_s=1)
    assert ShellRunner().run(request).error["type"] == "timeout"


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
    lines = result.stdout.split("\n")
    # A checkout under /tmp lies, inside, on the sandbox's own /tmp: the write lands there
    # (and never on the host: the last assertion).
    made_says = "ok" if made.is_relative_to("/tmp") else "Read-only file system"
    assert lines[:4] == [
        "/hostile Read-only file system", f"{pack_dir}/hostile Read-only file system",
        f"{made}/hostile {made_says}", "/tmp/ok ok"]
    # HOME: the sandbox's home, or the run's own folder in it when a warm server forked the run
    assert re.fullmatch(r"/home/attune(/run-[^/]+)?/ok ok", lines[4]) and lines[5:] == [""]
    assert not (pack_dir / "hostile").exists() and not (made / "hostile").exists()



def test_a_pack_folder_the_sandbox_cannot_reach_is_the_platforms_failure(write, make_request,
                                                                          pack_dir):
    entry = write("actions/ok.sh", "echo never\n")
    pack_dir.chmod(0o700)  # bwrap resolves what it binds as the sandbox's uid
    try:
        result = ShellRunner().run(dataclasses.replace(make_request(entry),
                                                       runner_type="shell"))
    finally:
        pack_dir.chmod(0o755)
    assert result.outcome is Outcome.FAILED, result
    assert result.error["type"] == "sandbox_unavailable", result.error
    assert result.error["message"].startswith("the sandbox could not be made: "), result.error
    assert str(pack_dir) in result.error["message"] and "never" not in result.stdout
