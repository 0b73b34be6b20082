"""The worker's side of the warm python path: one fork server per sandbox and interpreter (a
pack's virtualenv or the default), started on first use inside that sandbox (`sandbox.py`: the
owner's uid, the pack's files, its network), forking one child per run. A server is never
shared between owners: its sandbox is part of its key.

Forking a parent that has already imported the wrapper and the SDK costs a few milliseconds
where a cold `python` costs 30-40 (stack-notes.md §5). The protocol is described in
`wrappers/python_forkserver.py`. When a server is known not to have started the run (it could
not be started, or it died with the request unanswered) `ForkServerUnavailable` is raised and
the caller starts the action cold instead. A server that does not answer in time may still
fork the request later, so that run fails (`runner_unavailable`) rather than running twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import select
import signal
import socket
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import sandbox as sandboxes
from .base import RunnerError
from .sandbox import Sandbox

SERVER = Path(__file__).resolve().parent / "wrappers" / "python_forkserver.py"
# How long a server may take to answer a launch with the child's pid (it is started lazily, so
# the first launch includes its start-up).
LAUNCH_TIMEOUT_SECONDS = 10.0
# Servers kept per worker process; the least recently used one beyond this is retired (its
# running actions finish first).
MAX_SERVERS = 8
# How long `ForkServers.close` waits for each retired server to exit.
CLOSE_WAIT_SECONDS = 5.0
# An interpreter whose new server failed its first launch is run cold for this long.
BROKEN_SECONDS = 60.0


# The result pipe's number in a forked child (python_forkserver.py's RESULT_FD).
RESULT_FD = 3
# What a fork server's own environment holds of a run's: nothing particular to that run.
_SERVER_VARIABLES = ("PATH", "HOME", "TMPDIR", "LANG")


class ForkServerUnavailable(Exception):
    """The server could not take the run; nothing was started."""


def _read_line(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes | None, bytes]:
    """The next line from the server (without its newline; None at end of file before it)
    and what was read after it: `pid` and `exit` can arrive in one read."""
    while b"\n" not in buffer:
        chunk = sock.recv(64)
        if not chunk:
            return None, b""
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line, rest


class ForkedProcess:
    """A running action forked by a server: the same questions a Popen answers."""

    def __init__(self, reply: socket.socket, pid: int, on_exit: Callable[[], None],
                 pending: bytes = b"") -> None:
        self.pid = pid
        self._pending = pending  # read with the pid line
        self.returncode: int | None = None
        self._reply = reply
        self._ended = threading.Event()
        self._on_exit = on_exit
        threading.Thread(target=self._read, daemon=True, name=f"attune-forked-{pid}").start()

    def _read(self) -> None:
        try:
            line, _ = _read_line(self._reply, self._pending)
        except OSError:
            line = None
        # No exit line: the server died, and its children with it (death signal SIGKILL).
        if line is not None and line.startswith(b"exit "):
            self.returncode = int(line[5:])
        else:
            self.returncode = -signal.SIGKILL
        with contextlib.suppress(OSError):
            self._reply.close()
        self._ended.set()
        self._on_exit()

    def exited(self) -> bool:
        """Has the leader exited (and its group been killed and the leader reaped)?"""
        return self._ended.is_set()

    def signal_group(self, sig: int) -> None:
        """Signal the action's process group through the server (only while it is unreaped)."""
        if not self._ended.is_set():
            with contextlib.suppress(OSError):
                self._reply.sendall(b"kill %d\n" % sig)

    def kill(self) -> None:
        """Caller going away: closing the reply socket makes the server kill the group."""
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._reply.shutdown(socket.SHUT_RDWR)

    def finish(self) -> int:
        """The exit code, once the server reaped the leader (it killed the group first)."""
        self._ended.wait()
        assert self.returncode is not None
        return self.returncode


ServerKey = tuple[Any, ...]


def server_key(sandbox: Sandbox, interpreter: str) -> ServerKey:
    """Which server may fork a run: the same sandbox (owner, files, network, limits) whatever
    the run's working directory, and the same python."""
    return (dataclasses.replace(sandbox, cwd="/"), interpreter)


class ForkServer:
    """One server process for one sandbox and interpreter. It runs without a CPU limit (it
    lives long); each child sets its run's limits before the action starts."""

    def __init__(self, sandbox: Sandbox, interpreter: str, env: Mapping[str, str]) -> None:
        self.key = server_key(sandbox, interpreter)
        self.interpreter = interpreter
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server_box = dataclasses.replace(
            sandbox, cwd="/", limits=dataclasses.replace(sandbox.limits, cpu_seconds=None))
        try:
            self.process = sandboxes.spawn(
                server_box, [interpreter, "-I", "-B", str(SERVER), str(theirs.fileno())],
                env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), as_init=True)
        except (OSError, RunnerError) as exc:
            ours.close()
            message = exc.message if isinstance(exc, RunnerError) else str(exc)
            raise ForkServerUnavailable(f"Could not start {interpreter}: {message}") from exc
        finally:
            theirs.close()
        self.control = ours
        self.served = False

    def alive(self) -> bool:
        """Running, and still holding its end of the control socket (a server that died may
        leave its sandbox a moment longer)."""
        if self.process.poll() is not None:
            return False
        try:  # the server never writes on it: readable means closed
            return not select.select([self.control], [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def launch(
        self, cwd: str, env: Mapping[str, str], entry: str, stdio: tuple[int, int, int, int],
        on_exit: Callable[[], None], rlimits: Mapping[str, tuple[int, int]],
        argv: Sequence[str] | None = None,
    ) -> ForkedProcess:
        """Fork a child running `entry` (or executing `argv`: a shell or node run) with
        (stdin, stdout, stderr, result) as its fds 0-3 and `rlimits` (resource.RLIMIT_* name →
        (soft, hard)) set before it starts.

        The caller keeps its copies of the four fds until this returns, so that a failure
        leaves them usable for the cold path.
        """
        message = json.dumps({"cwd": cwd, "env": dict(env), "entry": entry,
                              "rlimits": dict(rlimits),
                              "argv": list(argv) if argv else None}).encode()
        reply, theirs = socket.socketpair()
        try:
            try:
                self._send(message, [theirs.fileno(), *stdio])
            finally:
                theirs.close()
            reply.settimeout(LAUNCH_TIMEOUT_SECONDS)
            line, rest = _read_line(reply)
            reply.settimeout(None)
        except TimeoutError as exc:
            # Closing our end first: a server that reaches the request later sees it and
            # skips it (or kills the child at once if it forked in between).
            reply.close()
            raise RunnerError(
                "runner_unavailable",
                f"The python fork server of {self.interpreter} did not answer within "
                f"{LAUNCH_TIMEOUT_SECONDS:g} s",
            ) from exc
        except OSError as exc:
            reply.close()
            raise ForkServerUnavailable(f"Fork server of {self.interpreter}: {exc}") from exc
        if line is None:
            reply.close()
            raise ForkServerUnavailable(f"The fork server of {self.interpreter} is gone")
        if not line.startswith(b"pid "):
            reply.close()
            raise ForkServerUnavailable(f"Fork server of {self.interpreter} said {line!r}")
        self.served = True
        return ForkedProcess(reply, int(line[4:]), on_exit, rest)

    def _send(self, message: bytes, fds: list[int]) -> None:
        """One datagram with the fds; a full socket buffer is waited out (green-friendly)."""
        while True:
            try:
                socket.send_fds(self.control, [message], fds)
                return
            except BlockingIOError:
                time.sleep(0.001)

    def retire(self, wait: float | None = None) -> None:
        """No new runs; the server exits once its running children have ended. Reaped within
        `wait` seconds if given, else by a background thread."""
        with contextlib.suppress(OSError):
            self.control.close()
        if wait is None:
            threading.Thread(target=self.process.wait, daemon=True).start()
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)


class ForkServers:
    """Servers by sandbox and interpreter, started on first use and restarted if they died."""

    def __init__(self, max_servers: int = MAX_SERVERS) -> None:
        self._servers: OrderedDict[ServerKey, ForkServer] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_servers
        self._broken: dict[ServerKey, float] = {}  # key → when to try a server again

    def get(self, sandbox: Sandbox, interpreter: str, env: Mapping[str, str]) -> ForkServer:
        key = server_key(sandbox, interpreter)
        with self._lock:
            if self._broken.get(key, 0.0) > time.monotonic():
                raise ForkServerUnavailable(f"The fork server of {interpreter} keeps failing")
            server = self._servers.get(key)
            if server is not None and not server.alive():
                server.retire()
                server = None
            if server is None:
                server = ForkServer(sandbox, interpreter, env)
                self._servers[key] = server
            self._servers.move_to_end(key)
            while len(self._servers) > self._max:
                self._servers.popitem(last=False)[1].retire()
            return server

    def discard(self, server: ForkServer) -> None:
        """Stop using `server` (it exits once its running children have ended)."""
        with self._lock:
            if self._servers.get(server.key) is server:
                del self._servers[server.key]
        server.retire()

    def failed(self, server: ForkServer) -> None:
        """A launch failed: a server that never served marks its key broken for a while."""
        if not server.served:
            with self._lock:
                self._broken[server.key] = time.monotonic() + BROKEN_SECONDS

    def describe(self) -> list[dict[str, Any]]:
        """What an operator asks of this process's servers (the worker's `status()` RPC):
        sandbox owner, interpreter, pid, network, alive, whether it served a run; and the
        interpreters run cold for now because their server keeps failing."""
        now = time.monotonic()
        with self._lock:
            servers = list(self._servers.values())
            broken = [(key, until) for key, until in self._broken.items() if until > now]
        found: list[dict[str, Any]] = [
            {"owner": server.key[0].owner, "interpreter": server.interpreter,
             "pid": server.process.pid, "network": server.key[0].network,
             "alive": server.alive(), "served": server.served}
            for server in servers]
        found += [{"owner": key[0].owner, "interpreter": key[1], "pid": None,
                   "network": key[0].network, "alive": False, "served": False,
                   "cold_for_seconds": round(until - now, 1)} for key, until in broken]
        return found

    def close(self) -> None:
        """Retire every server and reap the idle ones (tests; a worker's servers also go when
        the worker exits)."""
        with self._lock:
            for server in self._servers.values():
                server.retire(wait=CLOSE_WAIT_SECONDS)
            self._servers.clear()
            self._broken.clear()


SERVERS = ForkServers()


def launch(
    sandbox: Sandbox, interpreter: str, env: Mapping[str, str], entry: str,
    stdio: tuple[int, int, int, int], on_exit: Callable[[], None],
    argv: Sequence[str] | None = None,
) -> ForkedProcess:
    """Fork `entry` (or `argv`) from this process's server for `sandbox` and `interpreter`, in
    `sandbox.cwd` with `sandbox.limits` and the run's `env` (a server started for it gets only
    PATH, HOME, TMPDIR and LANG of it); one retry if the server had died."""
    server_env = {name: value for name, value in env.items() if name in _SERVER_VARIABLES}
    for attempt in (1, 2):
        server = SERVERS.get(sandbox, interpreter, server_env)
        try:
            return server.launch(sandbox.cwd, env, entry, stdio, on_exit,
                                 sandbox.limits.rlimits(), argv)
        except RunnerError:
            SERVERS.discard(server)  # stuck: the next run gets a new server
            raise
        except ForkServerUnavailable:
            if attempt == 2 or server.alive():
                SERVERS.failed(server)
                raise
    raise AssertionError("unreachable")
