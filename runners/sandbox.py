"""The sandbox every piece of tenant code runs in: bubblewrap, one per run (or per warm server).

Who: an unprivileged uid/gid per owner (a tenant, or 0 for system packs) from the worker user's
subordinate range (/etc/subuid, /etc/subgid): uid 1000 inside is `range start + owner` outside,
never 0 and never the services' user. The user namespace that maps it is made once per owner
and process (`unshare --user`, then newuidmap/newgidmap, or the map written directly by root)
and handed to bwrap (`--userns`), which makes fresh PID, mount, IPC, UTS and network
namespaces inside it for every sandbox.

What it sees: /usr and the root's symlinks to it, a few files of /etc (certificates, name
service, the dynamic linker), its own passwd/group, /proc of its own PID namespace, a minimal
/dev, a fresh /tmp and a fresh /work (its HOME) as size-limited tmpfs, and the paths its
`Sandbox` lists read-only (the pack, its environment, the interpreter, the wrappers) at the same
path as on the host. Nothing else: not the checkout, not the platform's virtualenv, not
`.attune/`, not other packs, not the Docker socket.

Limits: `prlimit` inside the sandbox sets memory (RLIMIT_DATA: node reserves more address
space than it uses), CPU seconds, processes (counted per uid: per owner), file size and open
files before the command starts; bwrap has set no-new-privileges and dropped every capability.

Network: `network=False` leaves only the sandbox's own loopback. `network=True` attaches
slirp4netns (user-mode TCP/IP, host loopback disabled) while bwrap waits on `--block-fd`, and the
sandbox's first command adds `prohibit` routes for private, link-local, shared and reserved
ranges and this host's own addresses, then drops the one capability it had for that. The way
back into the platform is the gateway's unix socket, bound at `API_SOCKET`.

Standard library only; runners stay pure (the worker passes `Sandbox` in the `RunRequest`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import pwd
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import RunnerError

log = logging.getLogger(__name__)

INSIDE_UID = 1000
INSIDE_GID = 1000
HOME = "/home/attune"
TMP = "/tmp"  # noqa: S108 - inside the sandbox: its own tmpfs
# The gateway's socket lives alone in a folder that is bound (not the socket file itself): a
# gateway that restarts makes a new socket there, which sandboxes made before still see.
API_SOCKET = "/run/attune/api/api.sock"
ROUTES = "/run/attune/routes"
# Where no /etc/subuid entry exists and the worker is root (tests, a root-run platform).
DEFAULT_RANGE = (1_500_000_000, 10_000_000)
# Files of the host's /etc a program commonly needs, bound read-only when they exist.
ETC_FILES = (
    "hosts", "nsswitch.conf", "host.conf", "gai.conf", "protocols", "services", "localtime",
    "mime.types", "os-release", "debian_version", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "ssl", "ca-certificates", "ca-certificates.conf", "alternatives", "pip.conf", "npmrc",
    "python3", "python3.11", "xdg/pip",
)
# Never reachable from a sandbox with network: this host's own networks, private, shared
# (CGNAT), link-local (cloud metadata), loopback and reserved ranges (plus this host's own
# addresses and the networks it is directly attached to: `host_networks`).
BLOCKED_NETWORKS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
)
SLIRP_NETWORK = "10.0.2.0/24"  # slirp4netns's own: its DNS forwarder is 10.0.2.3
SLIRP_DNS = "10.0.2.3"
# The wrappers and SDKs every action and sensor runs with, shown read-only in their sandboxes.
RUNTIME = tuple(str(Path(__file__).resolve().parent / name) for name in ("wrappers", "sdk"))
START_TIMEOUT_SECONDS = 10.0
MAX_NAMESPACES = 256
# A signal-killed command makes bwrap exit with 128 + the signal, as a shell does.
_SIGNAL_EXITS = range(129, 129 + 64)


class SandboxError(RunnerError):
    """The sandbox could not be made (missing tool, owner outside the uid range...)."""

    def __init__(self, message: str) -> None:
        super().__init__("sandbox_unavailable", message)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandboxed process may use; `cpu_seconds=None` means no CPU limit (sensors)."""

    memory_mb: int = 512
    cpu_seconds: int | None = 300
    processes: int = 128
    file_size_mb: int = 64
    open_files: int = 256
    tmp_mb: int = 64

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """resource.RLIMIT_* name → (soft, hard); the CPU hard limit is 1 s later (SIGKILL)."""
        mib = 1024 * 1024
        limits = {
            "RLIMIT_DATA": (self.memory_mb * mib,) * 2,
            "RLIMIT_NPROC": (self.processes,) * 2,
            "RLIMIT_FSIZE": (self.file_size_mb * mib,) * 2,
            "RLIMIT_NOFILE": (self.open_files,) * 2,
            "RLIMIT_CORE": (0, 0),
        }
        if self.cpu_seconds is not None:
            limits["RLIMIT_CPU"] = (self.cpu_seconds, self.cpu_seconds + 1)
        return limits

    def prlimit_argv(self) -> list[str]:
        """`prlimit --data=S:H ... --` (util-linux) setting `rlimits()` before the command."""
        flags = {"RLIMIT_DATA": "data", "RLIMIT_NPROC": "nproc", "RLIMIT_FSIZE": "fsize",
                 "RLIMIT_NOFILE": "nofile", "RLIMIT_CORE": "core", "RLIMIT_CPU": "cpu"}
        return [_tool("prlimit"), *(f"--{flags[name]}={soft}:{hard}"
                                    for name, (soft, hard) in self.rlimits().items()), "--"]

    def exceeded(self, signum: int) -> str | None:
        """The limit a death by `signum` means, if it means one."""
        if signum == signal.SIGXCPU and self.cpu_seconds is not None:
            return f"CPU time limit ({self.cpu_seconds} s) exceeded"
        if signum == signal.SIGXFSZ:
            return f"file size limit ({self.file_size_mb} MB) exceeded"
        return None


LIMIT_KEYS = tuple(Limits.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Host:
    """Where this process makes sandboxes: its state folder and the way back to the API."""

    state_dir: Path
    api_socket: Path | None = None
    # Extra CIDRs an operator lets sandboxes reach despite BLOCKED_NETWORKS.
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sandbox:
    """One sandbox: whose it is (`owner`: tenant id, 0 for system), what it sees, what it may
    use. `read_only` paths are bound at the same path; `outputs` are writable tmpfs at their
    path (a build's result, streamed out by its command)."""

    host: Host
    owner: int
    read_only: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    output_mb: int = 2048
    cwd: str = HOME

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The base environment inside: PATH, HOME, TMPDIR, LANG, plus `extra`."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "TMPDIR": TMP,
               "LANG": "C.UTF-8"}
        env.update(extra or {})
        return env


# -- tools and ranges ---------------------------------------------------------------------------

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tool(name: str) -> str:
    """The absolute path of a system tool (bwrap, prlimit, slirp4netns...), or SandboxError."""
    found = shutil.which(name, path=_SBIN_PATH)
    if found is None:
        raise SandboxError(f"{name} is not installed on this worker (scripts/up.sh installs it)")
    return found


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def installation_of(interpreter: str) -> tuple[str, ...]:
    """The folder a sandbox must also show for `interpreter` to run: its installation's prefix
    when it lives outside /usr (which every sandbox shows), else nothing."""
    real = Path(os.path.realpath(interpreter))
    return () if real.is_relative_to("/usr") else (str(real.parents[1]),)


def subordinate_range(kind: str = "uid", uid: int | None = None) -> tuple[int, int] | None:
    """(start, count) of this user's first range in /etc/sub{uid,gid}; root without one gets
    DEFAULT_RANGE (it may map anything); None for another user without one."""
    uid = os.getuid() if uid is None else uid
    names = {str(uid), _user_name(uid)}
    with contextlib.suppress(OSError):
        for line in Path(f"/etc/sub{kind}").read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
                return int(parts[1]), int(parts[2])
    return DEFAULT_RANGE if uid == 0 else None


def outside_ids(owner: int) -> tuple[int, int]:
    """The host uid and gid that `owner`'s sandboxes run as."""
    ids = []
    for kind in ("uid", "gid"):
        found = subordinate_range(kind)
        if found is None:
            raise SandboxError(
                f"the user running this worker has no /etc/sub{kind} range, so tenants cannot "
                f"get their own {kind}s (scripts/up.sh gives the attune user one)")
        start, count = found
        if not 0 <= owner < count:
            raise SandboxError(f"owner {owner} is outside the sandbox {kind} range "
                               f"({start}:{count} in /etc/sub{kind})")
        ids.append(start + owner)
    return ids[0], ids[1]


class UserNamespaces:
    """One user namespace per owner, mapping uid/gid 1000 inside to its own outside; kept open
    (a file descriptor) for the life of the process and shared by all its sandboxes."""

    def __init__(self, limit: int = MAX_NAMESPACES) -> None:
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def fd(self, owner: int) -> int:
        """The namespace's descriptor (made on first use)."""
        with self._lock:
            found = self._fds.get(owner)
            if found is not None:
                self._fds.move_to_end(owner)
                return found
            made = self._make(*outside_ids(owner))
            self._fds[owner] = made
            while len(self._fds) > self._limit:  # sandboxes running in it keep it alive
                os.close(self._fds.popitem(last=False)[1])
            return made

    @staticmethod
    def _make(uid: int, gid: int) -> int:
        holder = subprocess.Popen([_tool("unshare"), "--user", "--", _tool("cat")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.write(b".")
            holder.stdin.flush()
            if holder.stdout.read(1) != b".":  # cat runs: the namespace exists
                raise SandboxError("could not create a user namespace (unshare --user failed)")
            for kind, outside in (("uid", uid), ("gid", gid)):
                line = f"{INSIDE_UID if kind == 'uid' else INSIDE_GID} {outside} 1"
                if os.getuid() == 0:
                    Path(f"/proc/{holder.pid}/{kind}_map").write_text(line + "\n")
                    continue
                done = subprocess.run([_tool(f"new{kind}map"), str(holder.pid), *line.split()],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SandboxError(f"new{kind}map refused {line}: {done.stderr.strip()}")
            return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            with contextlib.suppress(OSError):
                holder.stdin.close()  # type: ignore[union-attr]
            holder.kill()
            holder.wait()

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()


NAMESPACES = UserNamespaces()


# -- the host side: state files -----------------------------------------------------------------

def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        done = subprocess.run([_tool("ip"), "-j", "-4", *args], capture_output=True,
                              text=True, timeout=10, check=False)
        return list(json.loads(done.stdout or "[]"))
    except (SandboxError, OSError, ValueError, subprocess.TimeoutExpired):
        return []


def host_networks() -> list[str]:
    """This host's own IPv4 addresses (as /32) and the networks it is directly attached to
    (its neighbours on them: its infrastructure), loopback excluded."""
    found = [f"{address['local']}/32" for interface in _ip_json("address")
             for address in interface.get("addr_info", [])
             if address.get("local") and not ipaddress.ip_address(address["local"]).is_loopback]
    found += [route["dst"] for route in _ip_json("route")
              if route.get("scope") == "link" and "/" in str(route.get("dst", ""))]
    return found


def _subnet_of(network: ipaddress.IPv4Network | ipaddress.IPv6Network,
               other: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Does `network` lie inside `other` (never across IP versions)?"""
    if isinstance(network, ipaddress.IPv4Network) and isinstance(other, ipaddress.IPv4Network):
        return network.subnet_of(other)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(other, ipaddress.IPv6Network):
        return network.subnet_of(other)
    return False


def routes(allowed: Iterable[str] = ()) -> str:
    """`ip -batch` lines: prohibit every blocked network not allowed."""
    keep = [ipaddress.ip_network(a, strict=False) for a in allowed]
    lines = []
    for entry in [*BLOCKED_NETWORKS, *host_networks()]:
        network = ipaddress.ip_network(entry, strict=False)
        if not any(_subnet_of(network, k) for k in keep):
            lines.append(f"route add prohibit {network}")
    for allowed_net in keep:  # more specific than the prohibits they sit in
        if allowed_net.version == 4:
            lines.append(f"route add {allowed_net} via 10.0.2.2")
    return "\n".join(lines) + "\n"


_prepared: dict[Path, float] = {}
_prepare_lock = threading.Lock()


def prepare_host(host: Host) -> None:
    """Write the sandbox's own files under `host.state_dir` (once per process and folder):
    passwd and group naming uid 1000, resolv.conf pointing at slirp4netns's DNS, the routes."""
    with _prepare_lock:
        if host.state_dir in _prepared:
            return
        folder = host.state_dir
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)  # noqa: S103 - sandboxes' own uids read these files
        if host.api_socket is not None:  # bound before the gateway may have made its socket
            host.api_socket.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(host.api_socket.parent, 0o755)  # noqa: S103 - the sandboxes' uids pass
        files = {
            "passwd": (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                       f"attune:x:{INSIDE_UID}:{INSIDE_GID}:Attune action:{HOME}:/bin/sh\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            "group": f"root:x:0:\nattune:x:{INSIDE_GID}:\nnogroup:x:65534:\n",
            "resolv.conf": f"nameserver {SLIRP_DNS}\n",
            "routes": routes(host.allowed_networks),
        }
        for name, text in files.items():
            tmp = folder / f".{name}.{os.getpid()}"
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, folder / name)
        _prepared[host.state_dir] = time.monotonic()


# -- bwrap ---------------------------------------------------------------------------------------

def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _ro(source: str | Path, dest: str | Path) -> list[str]:
    return ["--ro-bind", str(source), str(dest)]


def bwrap_argv(sandbox: Sandbox, argv: Sequence[str], ns_fd: int, status_fd: int,
               block_fd: int | None, guard_fd: int) -> list[str]:
    """The whole command line: bwrap's options, then the inner launcher, then `argv`.

    bwrap resolves the paths it binds as the sandbox's uid: every folder on the way to them
    must be traversable by anyone, and what is inside readable by anyone (scripts/up.sh checks
    the checkout and makes the run dir so; packs and environments are made readable)."""
    state = sandbox.host.state_dir
    mib = 1024 * 1024
    args = [
        _tool("bwrap"), "--userns", str(ns_fd), "--unshare-pid", "--unshare-ipc",
        "--unshare-uts", "--unshare-net", "--unshare-cgroup-try", "--die-with-parent",
        "--new-session", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID),
        "--hostname", "attune", "--json-status-fd", str(status_fd),
        *_system_binds(),
        *_ro(state / "passwd", "/etc/passwd"),
        *_ro(state / "group", "/etc/group"),
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(sandbox.limits.tmp_mb * mib), "--tmpfs", TMP,
        "--perms", "0700", "--size", str(sandbox.limits.tmp_mb * mib), "--tmpfs", HOME,
    ]
    for path in sandbox.read_only:
        args += _ro(path, path)
    for path in sandbox.outputs:
        args += ["--perms", "0755", "--size", str(sandbox.output_mb * mib), "--tmpfs", path]
    if sandbox.host.api_socket is not None:
        args += _ro(sandbox.host.api_socket.parent, Path(API_SOCKET).parent)
    args += ["--chdir", sandbox.cwd]
    # The first command inside: a watcher (bash: dash reads no fd above 9), holding no fd but
    # the guard, that ends the sandbox (every process of its uid in its PID namespace) when
    # this process dies and the guard pipe closes, since bwrap's --die-with-parent cannot
    # reach into a namespace it entered with --userns; with a
    # network, the routes (with the one capability bwrap kept, then dropped); then the limits
    # and the command.
    watcher = ("exec </dev/null >/dev/null 2>&1; for f in /proc/$$/fd/*; do n=${f##*/}; "
               f"case $n in 0|1|2|{guard_fd}) ;; *) exec {{n}}<&- ;; esac; done; "
               f"read -r _ <&{guard_fd}; kill -KILL -1")
    launcher = f"{_tool('bash')} -c {shlex.quote(watcher)} & "
    if block_fd is not None:
        args += [*_ro(state / "resolv.conf", "/etc/resolv.conf"),
                 *_ro(state / "routes", ROUTES),
                 "--block-fd", str(block_fd), "--cap-add", "CAP_NET_ADMIN,CAP_SETPCAP"]
        launcher += (f'{_tool("ip")} -batch {ROUTES} >/dev/null && exec {_tool("setpriv")} '
                     '--inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"')
    else:
        launcher += 'exec "$@"'
    # Last, once every mount point exists: the root itself (a tmpfs holding the folders bwrap
    # made for them, such as the parents of the paths shown) becomes read-only, so code writes
    # only in /tmp, home and outputs, whose sizes are limited.
    args += ["--remount-ro", "/"]
    return [*args, "--", "/bin/sh", "-c", launcher, "attune-sandbox",
            *sandbox.limits.prlimit_argv(), *argv]


class _Status:
    """Reads bwrap's --json-status-fd: the child's pid first, its exit code at the end (then
    `on_exit` is called: bwrap has exited, though the sandbox's init may hold its pipes)."""

    def __init__(self, sock: socket.socket, on_exit: Callable[[], None] | None) -> None:
        self._sock = sock
        self._on_exit = on_exit
        self.child_pid: int | None = None
        self.init_fd: int | None = None
        self.exit_code: int | None = None
        self._lock = threading.Lock()
        self.started = threading.Event()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True, name="attune-bwrap-status").start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
                while True:  # bwrap writes one JSON object per write, maybe over lines
                    text = buffer.decode(errors="replace")
                    start, end = text.find("{"), text.find("}")
                    if start < 0 or end < 0:
                        break
                    with contextlib.suppress(ValueError):
                        self._take(json.loads(text[start:end + 1]))
                    buffer = text[end + 1:].encode()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self._sock.close()
            # bwrap has exited, so has the command: what it left behind goes now (the init
            # would otherwise wait for it, holding the command's pipes open).
            self.kill_init()
            with self._lock:
                if self.init_fd is not None:
                    os.close(self.init_fd)
                    self.init_fd = None
            self.started.set()
            self.ended.set()
            if self._on_exit is not None:
                self._on_exit()

    def kill_init(self) -> None:
        """SIGKILL the init of the sandbox's PID namespace, and with it every process inside
        (by pidfd: never a recycled pid)."""
        with self._lock:
            if self.init_fd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)

    def init_gone(self) -> bool:
        with self._lock:
            if self.init_fd is None:
                return True
            return bool(select.select([self.init_fd], [], [], 0)[0])

    def _take(self, document: Mapping[str, Any]) -> None:
        if "child-pid" in document:
            self.child_pid = int(document["child-pid"])
            with self._lock, contextlib.suppress(OSError):  # the init of its PID namespace
                self.init_fd = os.pidfd_open(self.child_pid)
            self.started.set()
        if "exit-code" in document:
            self.exit_code = int(document["exit-code"])


class SandboxedProcess:
    """A command running in its sandbox: the same questions a Popen answers, and signals that
    reach the command inside (its session) rather than bwrap."""

    def __init__(self, proc: subprocess.Popen[bytes], status: _Status,
                 network: subprocess.Popen[bytes] | None, network_exit_fd: int | None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.stdin, self.stdout, self.stderr = proc.stdin, proc.stdout, proc.stderr
        self._status = status
        self._network = network
        self._network_exit_fd = network_exit_fd
        self._cleanup_lock = threading.Lock()

    @property
    def returncode(self) -> int | None:
        return None if self.proc.returncode is None else self._code(self.proc.returncode)

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._cleanup()
        return None if code is None else self._code(code)

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._cleanup()
        return self._code(code)

    def exited(self) -> bool:
        """Has bwrap (hence the sandbox) exited? WNOWAIT leaves it unreaped: its pgid stays ours."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def signal_group(self, sig: int) -> None:
        """SIGKILL ends the sandbox (bwrap, and the init of its PID namespace, with whom every
        process inside goes); other signals go to the command's session inside, so an action
        can clean up on SIGTERM."""
        if sig == signal.SIGKILL or self.exited():
            self._end()
            return
        self._status.started.wait(START_TIMEOUT_SECONDS)
        target = self._status.child_pid
        if target is None or self._status.init_gone():
            self._end()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target, sig)

    def _end(self) -> None:
        """SIGKILL bwrap's group and the sandbox's init."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._status.kill_init()

    def kill(self) -> None:
        """The caller is going away: end the sandbox now, reap it in the background."""
        self.signal_group(signal.SIGKILL)
        threading.Thread(target=self.wait, daemon=True, name="attune-reap").start()

    def finish(self) -> int:
        """After bwrap exited: end what the command left behind, reap; the exit code
        (negative: the command's signal)."""
        self._end()
        return self.wait()

    def _code(self, code: int) -> int:
        if self._status.ended.wait(1.0) and self._status.exit_code is not None:
            code = self._status.exit_code
        return -(code - 128) if code in _SIGNAL_EXITS else code

    def _cleanup(self) -> None:
        """Once: end what the command left behind, stop its network stack (idempotent, and
        safe from two threads: a poll and a wait may both see bwrap gone)."""
        self._end()
        with self._cleanup_lock:
            exit_fd, self._network_exit_fd = self._network_exit_fd, None
            network, self._network = self._network, None
        if exit_fd is not None:
            with contextlib.suppress(OSError):
                os.close(exit_fd)  # slirp4netns exits when it closes
        if network is not None:
            # Reaped aside: its exit waits for the kernel to tear its tap device down (20-30
            # ms measured), which no run needs to wait for (bench/runner_start.py).
            threading.Thread(target=_reap_network, args=(network,), daemon=True,
                             name="attune-slirp-reap").start()


def _reap_network(network: subprocess.Popen[bytes]) -> None:
    """Reap a slirp4netns whose exit fd was closed; killed if it has not gone within 5 s."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        network.wait(timeout=5)
    if network.poll() is None:
        network.kill()
        network.wait()


def _read_byte(fd: int, timeout: float) -> bytes:
    """One byte from a pipe within `timeout` (green-friendly: polled, non-blocking)."""
    os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while time.monotonic() < deadline:
        try:
            return os.read(fd, 1)
        except BlockingIOError:
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
    raise SandboxError(f"the sandbox's network did not come up within {timeout:g} s")


def _loopback_ready(child_pid: int) -> bool:
    """Has bwrap given the sandbox's loopback its address (127.0.0.1 is in the namespace's
    routing table)? bwrap adds it exclusively, then waits on block-fd; slirp4netns --configure
    brings `lo` up, which makes the kernel add that address itself: attached before bwrap's
    own step, bwrap would fail ("loopback: Failed RTM_NEWADDR") and the sandbox with it."""
    try:
        return "127.0.0.1" in Path(f"/proc/{child_pid}/net/fib_trie").read_text()
    except PermissionError:
        return False
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise SandboxError("the sandbox exited before its network was attached") from exc


def _attach_network(ns_fd: int, child_pid: int) -> tuple[subprocess.Popen[bytes], int]:
    """slirp4netns on the sandbox's network namespace, once bwrap has set up its loopback;
    returns it and the fd that ends it."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if _loopback_ready(child_pid):
            try:  # readable once bwrap has switched to the sandbox's uid (for root: at once)
                net_fd = os.open(f"/proc/{child_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                break
            except PermissionError:
                pass
            except FileNotFoundError as exc:
                raise SandboxError(
                    "the sandbox exited before its network was attached") from exc
        if time.monotonic() > deadline:
            raise SandboxError("the sandbox's network namespace never became reachable")
        time.sleep(0.0005)
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    try:
        slirp = subprocess.Popen(
            [_tool("slirp4netns"), "--configure", "--mtu=65520", "--disable-host-loopback",
             f"--userns-path=/proc/self/fd/{ns_fd}", "--netns-type=path",
             "--ready-fd", str(ready_w), "--exit-fd", str(exit_r),
             f"/proc/self/fd/{net_fd}", "tap0"],
            pass_fds=(ns_fd, net_fd, ready_w, exit_r), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        for fd in (net_fd, ready_w, exit_r):
            os.close(fd)
    try:
        if _read_byte(ready_r, START_TIMEOUT_SECONDS) != b"1":
            raise SandboxError("slirp4netns failed to configure the sandbox's network")
    except BaseException:
        os.close(exit_w)
        slirp.kill()
        slirp.wait()
        raise
    finally:
        os.close(ready_r)
    return slirp, exit_w


_guard: list[int] = []
_guard_lock = threading.Lock()


def guard_fd() -> int:
    """The read end of this process's guard pipe, whose write end only this process holds: it
    closes when this process dies, which every sandbox's watcher waits for."""
    with _guard_lock:
        if not _guard:
            read_end, write_end = os.pipe()  # both close-on-exec; the read end is passed on
            _guard[:] = [read_end, write_end]
        return _guard[0]


def spawn(sandbox: Sandbox, argv: Sequence[str], env: Mapping[str, str], *,
          stdin: Any = None, stdout: Any = None, stderr: Any = None,
          pass_fds: Sequence[int] = (), on_exit: Callable[[], None] | None = None,
          as_init: bool = False) -> SandboxedProcess:
    """Start `argv` in `sandbox` with exactly `env`; it dies with this process (setpriv's
    death signal on bwrap, the guard pipe's watcher inside). `on_exit` is called once bwrap
    has exited. `as_init`: the command is the init of its PID namespace, so the whole sandbox
    ends when it does (a warm server; an action keeps bwrap's init, which forwards no signal
    an action must see)."""
    prepare_host(sandbox.host)
    ns_fd = NAMESPACES.fd(sandbox.owner)
    status_ours, status_theirs = socket.socketpair()
    block_r = block_w = None
    if sandbox.network:
        block_r, block_w = os.pipe()
    guard = guard_fd()
    theirs = [status_theirs.fileno(), guard, *([block_r] if block_r is not None else [])]
    try:
        command = bwrap_argv(sandbox, argv, ns_fd, status_theirs.fileno(), block_r, guard)
        if as_init:
            command.insert(command.index("--unshare-pid") + 1, "--as-pid-1")
        extra: dict[str, Any] = {"extra_groups": []} if os.getuid() == 0 else {}
        proc = subprocess.Popen(
            [_tool("setpriv"), "--pdeathsig", "KILL", "--", *command],
            stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env),
            pass_fds=(ns_fd, *theirs, *pass_fds), start_new_session=True,
            close_fds=True, **extra,
        )
    except (OSError, SandboxError) as exc:
        status_ours.close()
        if block_w is not None:
            os.close(block_w)
        if isinstance(exc, SandboxError):
            raise
        raise SandboxError(f"could not start bwrap: {exc}") from exc
    finally:
        status_theirs.close()
        if block_r is not None:
            os.close(block_r)
    status = _Status(status_ours, on_exit)
    network = network_exit = None
    if block_w is not None:
        try:
            status.started.wait(START_TIMEOUT_SECONDS)
            if status.child_pid is None:
                raise SandboxError("bwrap did not start the sandbox")
            network, network_exit = _attach_network(ns_fd, status.child_pid)
            # writev, not write: eventlet's green os.write retries EPIPE forever, and a
            # sandbox that failed to start has no reader left.
            with contextlib.suppress(OSError):
                os.writev(block_w, [b"1"])
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            os.close(block_w)
    return SandboxedProcess(proc, status, network, network_exit)
