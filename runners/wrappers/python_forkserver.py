"""A warm python for actions: `python -I -B python_forkserver.py CONTROL_FD` (architecture.md,
principle 4). Started by a worker once per interpreter; forks one child per action.

It runs inside the sandbox the worker made for it (`runners/sandbox.py`), so every child is in
that sandbox too; each child gets its own work folder (its HOME and TMPDIR, removed when it is
reaped) and sets its run's resource limits before the action starts.

Protocol (the worker side is `runners/forkserver.py`). On the control socket (SOCK_SEQPACKET,
held only by the worker), one message per run: a JSON document {"cwd", "env", "entry",
"rlimits"} with
five file descriptors: the run's reply socket, then the action's stdin, stdout, stderr and
result pipe. The child starts its own session, dies with this server, takes the pipes as fds
0-3 and runs `python_wrapper.run_action` as a fresh interpreter would. On the reply socket this
server writes `pid N` at once and `exit CODE` (negative: killed by that signal) once the child
is reaped; the worker writes `kill SIG` to signal the child's process group. The group is
signalled only while its leader is unreaped, so a recycled pid is never hit. A request whose
reply socket the worker has already closed (it stopped waiting) is dropped, not started.

When the worker closes the reply socket, the group is killed. When the control socket closes
and the worker is gone, every group is killed and the server exits; when the worker merely
retired this server, running children finish first.

Standard library only, and nothing an action could notice: the action's own modules are never
imported here, so a reloaded pack's next run sees its new code. Its entry is compiled here
(never run), kept by its source's sha256 and read again for every run; each child gets it
with the fork, and what the children inherit is frozen out of their garbage collections.
"""

from __future__ import annotations

# Besides what the server needs, pre-imported for every child: what the wrapper (runpy) and
# the attune SDK (urllib) import anyway.
import _signal  # type: ignore[import-not-found]  # no stub; signal.py's own module
import atexit
import contextlib
import ctypes
import gc
import hashlib
import json
import os
import resource
import runpy  # noqa: F401
import selectors
import shutil
import signal
import socket
import stat
import sys
import tempfile
import traceback
import urllib.error
import urllib.request  # noqa: F401
import warnings
from types import CodeType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_wrapper

sys.path.pop(0)
sys.path.insert(0, python_wrapper.SDK_DIR)
import attune  # noqa: F401

sys.path.pop(0)

MAX_MESSAGE = 1 << 20
# Compiled entry points kept (by path and the source's sha256, so an edited file is compiled
# again), and the largest source compiled here: a child compiles what is not kept, as a cold
# run does.
MAX_COMPILED = 64
MAX_COMPILED_SOURCE = 256 * 1024
SERVER_PID = os.getpid()  # often 1: the server may be its sandbox's init
FDS_PER_RUN = 5
RESULT_FD = 3
# The exit code of a child that could not become the run (process.py: sandbox_unavailable).
SANDBOX_FAILED = 70
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter's top level makes of a SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _limit(rlimits: dict) -> None:
    """Set the run's resource limits (names of resource.RLIMIT_*) before the action starts."""
    for name, (soft, hard) in rlimits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _compiled(request: dict, cache: dict[tuple[str, bytes], CodeType | None]
              ) -> CodeType | None:
    """The run's entry compiled, when it defines `run`: each child then skips reading, parsing
    and compiling it. The source is read for every run, so each run gets the file's content
    at its start; the code is per child after the fork, so no run can change another's."""
    if request.get("argv"):
        return None
    entry = os.path.normpath(os.path.join(request["cwd"], request["entry"]))  # as the child's
    try:  # never blocking: a FIFO or a device is the child's to read, as in a cold run
        with open(os.open(entry, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            source = handle.read(MAX_COMPILED_SOURCE + 1)
    except OSError:
        return None
    if len(source) > MAX_COMPILED_SOURCE:
        return None
    key = (entry, hashlib.sha256(source).digest())
    if key not in cache:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a SyntaxWarning is the run's to print
                code = python_wrapper.compile_run_module(entry, source)
        except Exception:  # a syntax error or warning: the child compiles it as a cold run
            return None
        if len(cache) >= MAX_COMPILED:
            del cache[next(iter(cache))]
        cache[key] = code
    return cache[key]


def _child(request: dict, fds: list[int], work: str, compiled: CodeType | None) -> None:
    """In the forked child: become the action, with `work` as its HOME. Never returns."""
    code = 70
    try:
        os.setsid()
        if SERVER_PID != 1:  # as pid 1, its exit kills every process of its namespace
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != SERVER_PID:  # the server died between fork and prctl
                os._exit(code)
        signal.set_wakeup_fd(-1)
        # signal.signal's own C function: the wrapper would convert the server's handler it
        # returns to an enum, raising and catching a ValueError (~25 page faults per child).
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _, stdin, stdout, stderr, result = fds
        for source, target in ((stdin, 0), (stdout, 1), (stderr, 2), (result, RESULT_FD)):
            os.dup2(source, target)
        os.closerange(RESULT_FD + 1, os.sysconf("SC_OPEN_MAX"))
        try:
            os.chdir(request["cwd"])
        except OSError as exc:  # the platform's fault (a folder closed to the sandbox's uid)
            print(f"attune sandbox: cannot enter {request['cwd']}: {exc.strerror}",
                  file=sys.stderr, flush=True)
            os._exit(SANDBOX_FAILED)
        env = {**request["env"], "HOME": work, "TMPDIR": work}
        for name in list(os.environ):
            if name not in env:
                del os.environ[name]
        for name, value in env.items():
            os.environ[name] = value
        tempfile.tempdir = None
        _limit(request.get("rlimits") or {})
        if request.get("argv"):  # a shell or node run: this sandbox's warm start, then exec
            for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)  # python's own choices, not the action's
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execve(request["argv"][0], request["argv"], os.environ)  # noqa: S606 - argv as the cold path runs it
        try:
            code = python_wrapper.run_action(RESULT_FD, request["entry"], compiled)
        except SystemExit as exc:
            code = _exit_code(exc)
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # join non-daemon threads, as interpreter exit does
        atexit._run_exitfuncs()
    except BaseException:  # the child must end in os._exit whatever happens
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code & 0xFF)


def _remove(folder: str) -> None:
    """Remove a run's work folder (mostly left empty: one rmdir)."""
    try:
        os.rmdir(folder)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)


def _closed(sock: socket.socket) -> bool:
    """Has the peer closed this socket? (EOF is readable; an open, quiet peer is not.)"""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Server:
    """The select loop: launch requests, `kill` lines, and reaping on SIGCHLD."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.worker = os.getppid()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket | None] = {}  # pid → reply socket
        self.work: dict[int, str] = {}  # pid → the run's own folder, removed when reaped
        self.partial: dict[int, bytes] = {}  # pid → an unfinished line from the worker
        self.accepting = True
        self.compiled: dict[tuple[str, bytes], CodeType | None] = {}  # see _compiled
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake_r = wake_r
        self._wake_w = wake_w  # kept open for the life of the server
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(wake_r, selectors.EVENT_READ, "reap")

    def serve(self) -> None:
        while self.accepting or self.children:
            for key, _ in self.selector.select():
                if key.data == "control":
                    self._on_control()
                elif key.data == "reap":
                    while True:
                        try:
                            if not self._wake_r.recv(4096):
                                break
                        except BlockingIOError:
                            break
                    self._reap()
                else:
                    self._on_reply(key.data)

    def _on_control(self) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, FDS_PER_RUN)
        except OSError:
            message, fds = b"", []
        if not message:
            self.selector.unregister(self.control)
            self.accepting = False
            if os.getppid() != self.worker:  # the worker died: its actions die with it
                for pid in self.children:
                    _signal_group(pid, signal.SIGKILL)
            return
        if len(fds) != FDS_PER_RUN:
            for fd in fds:
                os.close(fd)
            return
        request = json.loads(message)
        reply = socket.socket(fileno=fds[0])
        if _closed(reply):  # the worker gave up waiting for this run: it must not start
            reply.close()
            for fd in fds[1:]:
                os.close(fd)
            return
        compiled = _compiled(request, self.compiled)
        work = ""
        try:
            work = tempfile.mkdtemp(prefix="run-", dir=os.environ.get("HOME") or None)
            pid = os.fork()
        except OSError as exc:  # EAGAIN, ENOMEM: unanswered, so the worker runs it cold
            print(f"attune fork server: fork failed: {exc}", file=sys.stderr, flush=True)
            pid = -1
        if pid == 0:
            _child(request, fds, work, compiled)
        for fd in fds[1:]:
            os.close(fd)
        if pid < 0:
            shutil.rmtree(work, ignore_errors=True)
            reply.close()
            return
        self.work[pid] = work
        try:
            reply.sendall(b"pid %d\n" % pid)
        except OSError:
            _signal_group(pid, signal.SIGKILL)
            reply.close()
            self.children[pid] = None
            return
        self.children[pid] = reply
        self.selector.register(reply, selectors.EVENT_READ, pid)

    def _on_reply(self, pid: int) -> None:
        reply = self.children.get(pid)
        if reply is None:
            return
        try:
            data = reply.recv(4096)
        except OSError:
            data = b""
        if not data:  # the worker stopped waiting for this run: the action goes
            _signal_group(pid, signal.SIGKILL)
            self.selector.unregister(reply)
            reply.close()
            self.children[pid] = None
            return
        lines = self.partial.pop(pid, b"") + data
        *complete, rest = lines.split(b"\n")
        if rest:
            self.partial[pid] = rest
        for line in complete:
            if line.startswith(b"kill ") and line[5:].isdigit():
                _signal_group(pid, int(line[5:]))

    def _reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # Whatever the action left running in its group goes with it, before the pid
            # can be recycled.
            _signal_group(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            _remove(self.work.pop(pid, ""))
            reply = self.children.pop(pid, None)
            self.partial.pop(pid, None)
            if reply is not None:
                self.selector.unregister(reply)
                with contextlib.suppress(OSError):
                    reply.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
                reply.close()


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    server = Server(control)
    # What every child inherits is left out of its collections: a full one would otherwise
    # write to every inherited object, copying each page that holds one (copy-on-write).
    gc.freeze()
    server.serve()


if __name__ == "__main__":
    main()
