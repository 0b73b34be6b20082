"""Shared machinery of the process runners (python, node, shell).

One run: start the action in its sandbox (`sandbox.py`: its own namespaces, uid and limits)
with the pack folder as working directory, write the one
JSON stdin document and close stdin, read stdout, stderr and the wrapper's result pipe each in
its own thread (greenthreads under eventlet's monkey patching) with a byte cap and bounded
memory, enforce the timeout and cancel by SIGTERM to the group then SIGKILL after a grace, kill
whatever the action left behind in its group, reap the leader (no zombies) and mask secrets.

Only the standard library is used, so this works with real threads as well as green ones.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from . import forkserver, sandbox
from .base import LineSplitter, Masker, Outcome, RunnerError, RunRequest, RunResult, error
from .environments import find_python
from .sandbox import Sandbox

CHUNK = 64 * 1024
# How long to keep reading pipes after the group is gone (only a process that escaped the
# group with setsid can still hold them); then the run ends with what was read.
DRAIN_SECONDS = 2.0
# While pipes are open the leader is checked at this interval (catches a leader that exited
# while a background process still holds its stdout).
LEADER_CHECK_SECONDS = 0.25


def truncation_marker(limit: int) -> str:
    """What a capped stream ends with (packs.md)."""
    return f"... (output truncated after {limit} bytes)"


def sandbox_of(request: RunRequest, *programs: str) -> Sandbox:
    """The request's sandbox with the request's working directory, the wrappers and SDKs, and
    each program's installation when it lives outside /usr; tenant code never runs without
    one."""
    if request.sandbox is None:
        raise RunnerError("sandbox_unavailable",
                          f"{request.action_ref}: no sandbox was given for this run")
    shown = [*sandbox.RUNTIME, *(p for program in programs
                                 for p in sandbox.installation_of(program))]
    extra = tuple(p for p in shown if p not in request.sandbox.read_only)
    return dataclasses.replace(request.sandbox, cwd=str(request.working_dir),
                               read_only=(*request.sandbox.read_only, *extra))


def base_environment(request: RunRequest) -> dict[str, str]:
    """A minimal child environment, built from nothing: no platform secrets reach it."""
    return sandbox_of(request).environment({
        "ATTUNE_EXECUTION_ID": str(request.execution_id),
        "ATTUNE_ACTION_REF": request.action_ref,
    })


class _Stream:
    """Reads one pipe to EOF in its own thread; keeps at most `keep` bytes, counts them all,
    and hands its lines to `lines` as they come (live output) when given."""

    def __init__(self, fd: int, keep: int, on_done: Callable[[], None],
                 lines: LineSplitter | None = None) -> None:
        self.fd = fd
        self.keep = keep
        self.data = bytearray()
        self.total = 0
        self.done = threading.Event()
        self._on_done = on_done
        self._lines = lines

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True, name=f"attune-read-{self.fd}").start()

    def _read(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self.fd, CHUNK)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not chunk:  # EOF (eventlet's green read returns '' when the fd closed)
                    break
                self.total += len(chunk)
                room = self.keep - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                if self._lines is not None:
                    self._lines.feed(chunk)
            if self._lines is not None:
                self._lines.end()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.done.set()
            self._on_done()


def _require_program(program: str, env: dict[str, str], cwd: str) -> None:
    """Fail as Popen would when the program is missing (the sandbox shows the same /usr and
    the same pack paths, so what is missing here is missing there)."""
    found = (os.path.join(cwd, program) if os.sep in program
             else shutil.which(program, path=env.get("PATH", "")))
    if not found or not os.access(found, os.X_OK):
        raise RunnerError("spawn_error", f"Could not start {program}: no such executable")


def _write_all(fd: int, data: bytes) -> None:
    """Write the stdin document and close; an action that never reads its input is fine.

    `os.writev` on a non-blocking fd, not `os.write`: eventlet's green `os.write` retries
    EPIPE forever, so an action that exits without reading stdin would leave a greenthread
    spinning at full CPU in the worker.
    """
    try:
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            try:
                written = os.writev(fd, [view])
            except BlockingIOError:  # the pipe is full: the action has not read yet
                time.sleep(0.002)
                continue
            if not written:
                break
            view = view[written:]
    except OSError:
        pass  # EPIPE: the action exited without reading stdin
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


# What interpreters print when an allocation fails under RLIMIT_DATA: python's MemoryError,
# the C library's ENOMEM, and "out of memory" in any case (node's "JavaScript heap out of
# memory", V8's "Fatal process out of memory: ...", "Oilpan: Out of memory").
_OUT_OF_MEMORY = re.compile(r"MemoryError|Cannot allocate memory|memory exhausted"
                            r"|(?i:out of memory)")
# What programs print when a new process is refused under RLIMIT_NPROC: bash, dash, node's
# child_process, and python's os.fork/subprocess (a BlockingIOError raised from a fork).
_FORK_REFUSED = re.compile(
    r"fork: (retry: )?Resource temporarily unavailable|Cannot fork|\bspawn(Sync)? \S+ EAGAIN"
    r"|fork\w*\([^\n]*\n(\s*\^+\n)?BlockingIOError: \[Errno 11\]")
# ENOSPC: only the sandbox's /tmp and home are writable, and their size is the tmp_mb limit.
_DISK_FULL = re.compile(r"No space left on device", re.IGNORECASE)
# EMFILE: RLIMIT_NOFILE (python, node and shells all print the C library's message).
_TOO_MANY_FILES = re.compile(r"Too many open files|\bEMFILE\b")
# EFBIG: python ignores SIGXFSZ, so RLIMIT_FSIZE shows as an error instead of a signal; a
# shell reports its child's SIGXFSZ ("File size limit exceeded") and exits 153 itself.
_FILE_TOO_LARGE = re.compile(r"File too large|File size limit exceeded", re.IGNORECASE)
# A shell's report of its child's SIGXCPU.
_CPU_EXCEEDED = re.compile(r"CPU time limit exceeded")
# V8 ends a failed allocation under RLIMIT_DATA with a fatal error (SIGTRAP or SIGABRT) whose
# wording varies with where it failed.
_V8_FATAL = re.compile(r"^# Fatal error in ", re.MULTILINE)


def exceeded_limit(request: RunRequest, exit_code: int, stderr: str) -> str | None:
    """Which sandbox limit ended a failed run, if one did: a signal that means one (CPU time,
    file size), or what programs print when the kernel refused memory, a process, disk space,
    file size or another open file."""
    if request.sandbox is None:
        return None
    limits = request.sandbox.limits
    if exit_code < 0 and (found := limits.exceeded(-exit_code)):
        return found
    tail = stderr[-4096:]
    if _OUT_OF_MEMORY.search(tail) or (
            exit_code in (-signal.SIGTRAP, -signal.SIGABRT) and _V8_FATAL.search(stderr)):
        return f"memory limit ({limits.memory_mb} MB) exceeded"
    if _CPU_EXCEEDED.search(tail) and limits.cpu_seconds is not None:
        return f"CPU time limit ({limits.cpu_seconds} s) exceeded"
    if _FORK_REFUSED.search(tail):
        return f"process limit ({limits.processes} processes) exceeded"
    if _DISK_FULL.search(tail):
        return f"disk space limit ({limits.tmp_mb} MB, each of /tmp and home) exceeded"
    if _FILE_TOO_LARGE.search(tail):
        return f"file size limit ({limits.file_size_mb} MB) exceeded"
    if _TOO_MANY_FILES.search(tail):
        return f"open files limit ({limits.open_files} files) exceeded"
    return None


# bwrap's own complaint (exit 1), and a warm server's child that could not enter the run's
# folder (python_forkserver.py, exit 70).
_SANDBOX_COMPLAINTS = {(1, "bwrap: "), (70, "attune ")}


def _sandbox_failure(request: RunRequest, exit_code: int, stderr: str) -> str | None:
    """bwrap's own complaint when it could not build the sandbox (a folder its uid cannot
    traverse, say): the platform's fault, not the action's. A run printing the same only
    mislabels its own failure."""
    if request.sandbox is None or (exit_code, stderr[:7]) not in _SANDBOX_COMPLAINTS:
        return None
    said = stderr.splitlines()[0].partition(": ")[2]
    return f"the sandbox could not be made: {said}"


def _decode(data: bytes, cut: bool) -> str:
    """UTF-8 text; a cut may split a character, whose partial bytes are dropped."""
    if not cut:
        return data.decode("utf-8", "replace")
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Child(Protocol):
    """A started action: its leader's pid and how to watch, signal and reap it."""

    pid: int

    def exited(self) -> bool:
        """Has the leader exited?"""

    def signal_group(self, sig: int) -> None:
        """Signal the action's whole process group (only while the leader is unreaped)."""

    def kill(self) -> None:
        """The caller is going away: kill the group now."""

    def finish(self) -> int:
        """After the leader exited: kill what is left of the group, reap, the exit code."""


class WarmStart(NamedTuple):
    """How a run starts from its sandbox's warm server: the server's interpreter, and either the
    python `entry` its child runs itself or the `argv` the child executes."""

    interpreter: str
    entry: str
    argv: list[str] | None


class ProcessRunner:
    """Base of the process runners: subclasses say which command and environment to use."""

    #: Whether the child gets a result pipe (the wrappers write {"output"} or {"error"} to it).
    uses_result_pipe = True

    def __init__(self) -> None:
        self._canceled = threading.Event()
        self._wake = threading.Event()

    # -- what subclasses provide -------------------------------------------------------------
    def command(self, request: RunRequest, result_fd: int | None) -> list[str]:
        """argv of the child; `result_fd` is the number of the result pipe inside the child."""
        raise NotImplementedError

    def environment(self, request: RunRequest) -> dict[str, str]:
        """The child's whole environment (nothing is inherited)."""
        return base_environment(request)

    def warm_start(self, request: RunRequest, argv: list[str]) -> WarmStart:
        """A server of the worker's own python whose child executes the command (its result
        pipe, if any, is fd 3 there)."""
        result_fd = forkserver.RESULT_FD if self.uses_result_pipe else None
        return WarmStart(find_python(), "", self.command(request, result_fd))

    def start(
        self, request: RunRequest, argv: list[str], env: dict[str, str],
        stdio: tuple[int, int, int, int | None],
    ) -> Child:
        """Start `argv` in the request's sandbox with (stdin, stdout, stderr, result) as its
        pipes: a fork of the sandbox's warm server, or, when none can take it, a fresh sandbox
        of its own. The caller closes its copies of `stdio`."""
        if (warm := self._start_warm(request, argv, env, stdio)) is not None:
            return warm
        stdin, stdout, stderr, result = stdio
        return sandbox.spawn(sandbox_of(request, argv[0]), argv, env, stdin=stdin, stdout=stdout,
                             stderr=stderr, pass_fds=(result,) if result is not None else (),
                             on_exit=self._wake.set)

    def _start_warm(self, request: RunRequest, argv: list[str], env: dict[str, str],
                    stdio: tuple[int, int, int, int | None]) -> Child | None:
        """Fork the warm server of the run's sandbox (its pid 1, kept per tenant, pack,
        environment and limits); None when no server could take the run."""
        warm = self.warm_start(request, argv)
        box = sandbox_of(request, warm.interpreter, *(warm.argv or [])[:1])
        stdin, stdout, stderr, result = stdio
        # A run without a result pipe gets /dev/null there (the server hands on four fds).
        target = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) if result is None else result
        try:
            return forkserver.launch(box, warm.interpreter, env, warm.entry,
                                     (stdin, stdout, stderr, target), self._wake.set,
                                     argv=warm.argv)
        except forkserver.ForkServerUnavailable:
            return None
        finally:
            if result is None:
                os.close(target)

    # -- the Runner protocol ------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the run: SIGTERM to the group, SIGKILL after the grace (see `_terminate`)."""
        self._canceled.set()
        self._wake.set()

    def run(self, request: RunRequest) -> RunResult:
        """Run the action to the end; failures (including timeouts) are data in the result."""
        if self._canceled.is_set():
            return RunResult(
                outcome=Outcome.CANCELED, error=error("canceled", "Execution canceled"),
                duration_ms=0,
            )
        try:
            return self._run(request)
        except RunnerError as exc:
            return RunResult(outcome=Outcome.FAILED, error=error(exc.error_type, exc.message))

    # -- the machinery ------------------------------------------------------------------------
    def _run(self, request: RunRequest) -> RunResult:
        masker = request.masker()
        keep = request.max_output_bytes + max(masker.longest - 1, 0)
        stdin_data = json.dumps(request.stdin_document(), default=str).encode()
        env = self.environment(request)

        fds: list[int] = []
        try:
            stdin_r, stdin_w = os.pipe()
            fds += [stdin_r, stdin_w]
            out_r, out_w = os.pipe()
            fds += [out_r, out_w]
            err_r, err_w = os.pipe()
            fds += [err_r, err_w]
            res_r = res_w = None
            if self.uses_result_pipe:
                res_r, res_w = os.pipe()
                fds += [res_r, res_w]
            argv = self.command(request, res_w)
            _require_program(argv[0], env, str(request.working_dir))
            started = time.monotonic()
            child = self.start(request, argv, env, (stdin_r, out_w, err_w, res_w))
        except BaseException:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        # The child's ends now live in the child only.
        for end in (stdin_r, out_w, err_w, res_w):
            if end is not None:
                os.close(end)

        streams: list[_Stream] = []

        def stream_done() -> None:
            if all(s.done.is_set() for s in streams):
                self._wake.set()

        live = request.output_lines
        out = _Stream(out_r, keep, stream_done,
                      LineSplitter("stdout", live) if live is not None else None)
        err = _Stream(err_r, keep, stream_done,
                      LineSplitter("stderr", live) if live is not None else None)
        streams += [out, err]
        res = None
        if res_r is not None:
            res = _Stream(res_r, request.max_result_bytes, stream_done)
            streams.append(res)
        for stream in streams:
            stream.start()
        threading.Thread(
            target=_write_all, args=(stdin_w, stdin_data), daemon=True, name="attune-stdin"
        ).start()

        try:
            ended_by = self._supervise(child, started + request.timeout_s, request.kill_grace_s)
        except BaseException:
            # The caller is going away (its greenthread killed, the worker dying): the action
            # must not outlive it.
            child.kill()
            raise
        # Whatever the action left running in its group goes with it (no leaks, no held pipes).
        exit_code = child.finish()
        duration_ms = round((time.monotonic() - started) * 1000)
        drain_until = time.monotonic() + DRAIN_SECONDS
        for stream in streams:
            stream.done.wait(max(drain_until - time.monotonic(), 0))

        return self._result(request, masker, ended_by, exit_code, duration_ms, out, err, res)

    def _supervise(self, child: Child, deadline: float, grace: float) -> str | None:
        """Wait for the leader to exit; returns "timeout"/"canceled" when we had to stop it."""
        interval = 0.001
        while not child.exited():
            if self._canceled.is_set():
                self._terminate(child, grace)
                return "canceled"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._terminate(child, grace)
                return "timeout"
            if self._wake.is_set():
                # Every pipe is closed: the leader is exiting right now (P10: poll finely).
                time.sleep(min(interval, remaining))
                interval = min(interval * 2, 0.05)
            else:
                self._wake.wait(min(LEADER_CHECK_SECONDS, remaining))
        return None

    @staticmethod
    def _terminate(child: Child, grace: float) -> None:
        """SIGTERM to the whole group, SIGKILL after the grace period."""
        child.signal_group(signal.SIGTERM)
        until = time.monotonic() + grace
        interval = 0.005
        while not child.exited() and time.monotonic() < until:
            time.sleep(interval)
            interval = min(interval * 2, 0.1)
        child.signal_group(signal.SIGKILL)

    def _result(
        self,
        request: RunRequest,
        masker: Masker,
        ended_by: str | None,
        exit_code: int,
        duration_ms: int,
        out: _Stream,
        err: _Stream,
        res: _Stream | None,
    ) -> RunResult:
        limit = request.max_output_bytes
        texts = []
        truncated = False
        for stream in (out, err):
            cut = stream.total > limit
            text = _decode(masker.cut(bytes(stream.data), limit), cut)
            if cut:
                text += truncation_marker(limit)
                truncated = True
            texts.append(text)
        stdout, stderr = texts

        document: dict[str, Any] = {}
        problem = None
        if res is not None and res.total:
            if res.total > request.max_result_bytes:
                problem = error(
                    "output_too_large",
                    f"The action's return value is larger than {request.max_result_bytes} bytes",
                )
            else:
                try:
                    parsed = json.loads(bytes(res.data))
                    if not isinstance(parsed, dict):
                        raise ValueError("not an object")
                    document = parsed
                except ValueError:
                    problem = error("protocol_error", "The action wrapper wrote a malformed result")

        if "output" in document:
            output = document["output"]
        else:
            output = None
            if stdout.strip() and not out.total > limit:
                with contextlib.suppress(ValueError):
                    output = json.loads(stdout)

        reported = document.get("error") if isinstance(document.get("error"), dict) else None
        err_doc: dict[str, Any] | None
        if ended_by == "canceled":
            outcome, err_doc = Outcome.CANCELED, error("canceled", "Execution canceled")
        elif ended_by == "timeout":
            outcome = Outcome.FAILED
            # A fork bomb's shell retries refused forks until the timeout stops it.
            if request.sandbox is not None and _FORK_REFUSED.search(stderr[-4096:]):
                err_doc = error("resource_limit", (
                    f"process limit ({request.sandbox.limits.processes} processes) exceeded; "
                    f"stopped at the timeout ({request.timeout_s:g} s)"))
            else:
                err_doc = error("timeout", f"Action timed out after {request.timeout_s:g} s")
        elif exit_code != 0 or problem or reported:
            outcome = Outcome.FAILED
            # A python action's error is reported, whatever its exit code (a forked run may
            # exit 0 after reporting it): an error that a limit caused is that limit.
            exceeded = exceeded_limit(request, exit_code, stderr)
            if exceeded:
                err_doc = error("resource_limit", exceeded)
            elif sandbox_failure := _sandbox_failure(request, exit_code, stderr):
                err_doc = error("sandbox_unavailable", sandbox_failure)
            elif exit_code == 0:
                err_doc = problem or reported
            elif reported:
                err_doc = reported
            elif exit_code < 0:
                err_doc = error(
                    "killed", f"Action was killed by signal {_signal_name(-exit_code)}"
                )
            else:
                err_doc = error("nonzero_exit", f"Action exited with code {exit_code}")
        else:
            outcome, err_doc = Outcome.SUCCEEDED, None

        return RunResult(
            outcome=outcome,
            output=masker.value(output),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            error=masker.value(err_doc),
            truncated=truncated,
            duration_ms=duration_ms,
        )
