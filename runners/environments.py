"""Per-pack dependency environments: a virtualenv for requirements.txt, node_modules for
package.json.

One environment per pack, pack version and dependency digest (plus the interpreter), built once
under a file lock and then reused by every run and every worker process on the host:

    <root>/python/<owner>/<ref>/<version>-<digest>/              a virtualenv (bin/python)
    <root>/node/<owner>/<ref>/<version>-<digest>/node_modules/   npm's install of package.json

`ready.json` is written last: a folder without it is a crashed build and is built again. A
failed build removes its folder and leaves `<folder>.failed.json` holding pip's (npm's) output,
so runs fail fast with that error until the pack is reloaded (`retry_failed=True`) or
`failure_retry_s` has passed. A new version or new requirements make a new folder, so runs in
flight keep the environment they started with; `prune` removes old, idle ones.

Builds run tenant-controlled code (setup.py, npm scripts), so each runs in a sandbox of the
pack's owner (`sandbox.py`) that sees the pack read-only and the environment's folder as an
empty tmpfs at its final path, with outbound network for the registries; its standard output
is a tar of that folder, unpacked here into the real one (owned by this process, readable by
sandboxes), so a build can write nowhere else.

Pure: no database. The worker records `env_status`; the runners get an absolute interpreter
(`RunRequest.interpreter`) or module path (`RunRequest.module_paths`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from . import dependency_files
from . import sandbox as sandboxes
from .base import RunnerError
from .sandbox import Host, Limits, Sandbox

PYTHON, NODE = "python", "node"
KINDS = (PYTHON, NODE)
REQUIREMENTS = "requirements.txt"
# Copied into the node environment; the digest covers all of them.
NODE_FILES = ("package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc")
READY, FAILED_SUFFIX, LOCK_SUFFIX = "ready.json", ".failed.json", ".lock"
MAX_ERROR_CHARS = 6000
_UNSAFE = re.compile(r"[^0-9A-Za-z._+-]")


class EnvironmentBuildError(RunnerError):
    """Installing a pack's dependencies failed; `message` carries the installer's output."""

    def __init__(self, message: str) -> None:
        super().__init__("environment_failed", message)


@dataclass(frozen=True, slots=True)
class PackSource:
    """What identifies a pack's environments: owner ("system" or a tenant id), ref, version,
    folder, and the python version pack.yaml asks for (`runtime: {python: "3.11"}`)."""

    owner: str
    ref: str
    version: str
    folder: Path
    python: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder).absolute())

    @classmethod
    def of_pack(cls, pack: Mapping[str, Any] | None, folder: Path | None
                ) -> PackSource | None:
        """The source of a pack row (tenant_id, ref, version, meta) whose folder on this host
        is `folder`; None for a pack without one."""
        if not pack or folder is None:
            return None
        runtime = (pack.get("meta") or {}).get("runtime")
        python = runtime.get("python") if isinstance(runtime, Mapping) else None
        return cls(
            owner="system" if pack["tenant_id"] is None else str(pack["tenant_id"]),
            ref=pack["ref"], version=pack["version"], folder=Path(folder),
            python=None if python in (None, "") else str(python),
        )

    def kinds(self) -> tuple[str, ...]:
        """The environments this pack needs: python for requirements.txt, node for
        package.json."""
        found = []
        if (self.folder / REQUIREMENTS).is_file():
            found.append(PYTHON)
        if (self.folder / "package.json").is_file():
            found.append(NODE)
        return tuple(found)


@dataclass(frozen=True, slots=True)
class PackEnvironment:
    """The ready environments of one pack (None where the pack needs none)."""

    python: Path | None = None
    node_modules: Path | None = None

    def interpreter(self, runner_type: str) -> str | None:
        """The absolute interpreter for `runner_type` (the virtualenv's python), else None."""
        return str(self.python) if runner_type == PYTHON and self.python else None

    def module_paths(self, runner_type: str) -> tuple[str, ...]:
        """Extra module folders for `runner_type` (node: the pack's node_modules)."""
        if runner_type == NODE and self.node_modules:
            return (str(self.node_modules),)
        return ()


@dataclass(frozen=True, slots=True)
class EnvironmentState:
    """What `Environments.state` sees on disk without building anything."""

    status: str  # ready | building | failed | missing
    error: str | None = None


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part)[:80] or "_"


def _sha256(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()


# What an installer may take from this process's environment: how to reach the registries.
_PASSED = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "pip_", "npm_config_",
           "ssl_cert_", "requests_ca_bundle", "node_extra_ca_certs", "curl_ca_bundle")


def build_environment() -> dict[str, str]:
    """The installers' environment: proxies, index and certificate settings of this process
    (nothing else: the platform's ATTUNE_* settings and secrets never reach an install script),
    plus quiet, non-interactive defaults."""
    env = {k: v for k, v in os.environ.items()
           if k.lower().startswith(_PASSED) and not k.upper().startswith("ATTUNE_")}
    env.update({
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    })
    return env


@lru_cache(maxsize=16)
def find_python(version: str | None = None) -> str:
    """An absolute, real interpreter path for `version` ("3.11"); None → this worker's own.

    Never a pyenv shim (a bash script that costs 150 ms per spawn and can change its mind).
    """
    own_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = getattr(sys, "_base_executable", None) or sys.executable
    own = os.path.realpath(base)
    wanted = str(version).strip() if version not in (None, "") else own_version
    if wanted in (own_version, "3", f"python{own_version}"):
        return own
    if not re.fullmatch(r"[23]\.\d{1,2}", wanted):
        raise EnvironmentBuildError(
            f"pack.yaml runtime.python must be a version such as \"3.11\", not {wanted!r}")
    name = f"python{wanted}"
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    folders = [os.path.dirname(own), "/usr/local/bin", "/usr/bin"]
    folders += sorted(str(p / "bin") for p in pyenv.glob(f"{wanted}*")) if pyenv.is_dir() else []
    folders += [p for p in os.environ.get("PATH", "").split(os.pathsep) if "shims" not in p]
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    raise EnvironmentBuildError(
        f"pack.yaml asks for python {wanted}, which this worker does not have "
        f"(it has {own_version})")


@lru_cache(maxsize=16)
def _python_version(interpreter: str) -> str:
    if interpreter == os.path.realpath(getattr(sys, "_base_executable", sys.executable)):
        return platform.python_version()
    done = subprocess.run([interpreter, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip() or interpreter


@lru_cache(maxsize=1)
def _node_version() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        return "none"
    done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout.strip()


_ERROR_PREFIXES = ("ERROR:", "npm ERR!", "npm error")


def _headline(output: str) -> str:
    """The installer's first telling error line: pip's first ERROR, npm's first error after
    its `code` line (npm 9 says `npm ERR!`, npm 10+ `npm error`; both end with a log path)."""
    for line in output.splitlines():
        prefix = next((p for p in _ERROR_PREFIXES if line.startswith(p)), None)
        said = line[len(prefix):].strip() if prefix else ""
        if said and not said.startswith(("code ", "A complete log", "/")):
            return line
    return "see its output below"


def _tail(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else "... " + text[-limit:]


@contextlib.contextmanager
def _locked(path: Path, timeout: float, what: str) -> Iterator[None]:
    """An exclusive flock on `path`, waited for cooperatively (green under eventlet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EnvironmentBuildError(
                        f"Timed out after {timeout:g} s waiting for another build of {what}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        yield
    finally:
        os.close(fd)


def _is_locked(path: Path) -> bool:
    """Is someone building right now (holding the lock)?"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Environments:
    """Builds, finds and prunes pack environments under `root` (see the module docstring)."""

    def __init__(self, root: Path, host: Host, *, limits: Limits | None = None,
                 build_timeout_s: float = 900.0, failure_retry_s: float = 300.0,
                 output_mb: int = 4096) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.limits = limits or Limits(memory_mb=4096, cpu_seconds=3600, processes=512,
                                       file_size_mb=1024, open_files=4096, tmp_mb=1024)
        self.build_timeout_s = build_timeout_s
        self.failure_retry_s = failure_retry_s
        self.output_mb = output_mb

    # -- where ---------------------------------------------------------------------------------
    def path(self, source: PackSource, kind: str) -> Path:
        """The folder of `source`'s environment of `kind` (built or not)."""
        return (self.root / kind / _safe(source.owner) / _safe(source.ref)
                / f"{_safe(source.version)}-{self.key(source, kind)[:16]}")

    def key(self, source: PackSource, kind: str) -> str:
        """The digest that names an environment: dependency files plus interpreter version."""
        if kind == PYTHON:
            interpreter = find_python(source.python)
            return _sha256((source.folder / REQUIREMENTS).read_bytes(),
                           _python_version(interpreter).encode())
        if kind == NODE:
            chunks = [name.encode() + b"\0" + (source.folder / name).read_bytes()
                      for name in NODE_FILES if (source.folder / name).is_file()]
            return _sha256(*chunks, _node_version().encode())
        raise ValueError(f"unknown environment kind {kind!r}")

    # -- what is there ---------------------------------------------------------------------------
    def state(self, source: PackSource, kinds: Sequence[str] | None = None) -> EnvironmentState:
        """ready / building / failed (with the error) / missing, read from disk only."""
        states = []
        for kind in source.kinds() if kinds is None else kinds:
            try:
                folder = self.path(source, kind)
            except EnvironmentBuildError as exc:
                return EnvironmentState("failed", exc.message)
            failure = self._failure(folder, ignore_age=True)
            if (folder / READY).is_file():
                states.append("ready")
            elif _is_locked(folder.with_name(folder.name + LOCK_SUFFIX)):
                states.append("building")
            elif failure is not None:
                return EnvironmentState("failed", failure)
            else:
                states.append("missing")
        for status in ("building", "missing"):
            if status in states:
                return EnvironmentState(status)
        return EnvironmentState("ready")

    def building(self) -> list[dict[str, str]]:
        """The builds running on this host right now (their lock is held, by any process):
        kind, owner, pack ref and version as their folder names them."""
        found = []
        for lock in sorted(self.root.glob(f"*/*/*/*{LOCK_SUFFIX}")):
            if _is_locked(lock):
                kind, owner, ref = lock.parts[-4:-1]
                version = lock.name[:-len(LOCK_SUFFIX)].rpartition("-")[0]
                found.append({"kind": kind, "owner": owner, "pack": ref, "version": version})
        return found

    # -- building ---------------------------------------------------------------------------------
    def ensure(self, source: PackSource, kinds: Sequence[str] | None = None, *,
               retry_failed: bool = False) -> PackEnvironment:
        """The pack's environments, building what is missing; EnvironmentBuildError with the
        installer's output when a build fails (or failed recently, unless `retry_failed`)."""
        wanted = [k for k in (source.kinds() if kinds is None else kinds) if k in source.kinds()]
        python = node = None
        if PYTHON in wanted:
            python = self._ensure(source, PYTHON, retry_failed) / "bin" / "python"
        if NODE in wanted:
            node = self._ensure(source, NODE, retry_failed) / "node_modules"
            _link_node_modules(source.folder, node)
        return PackEnvironment(python=python, node_modules=node)

    def _ensure(self, source: PackSource, kind: str, retry_failed: bool) -> Path:
        folder = self.path(source, kind)
        if self._ready(folder):
            return folder
        failure = None if retry_failed else self._failure(folder)
        if failure is not None:
            raise EnvironmentBuildError(failure)
        what = f"the {kind} environment of pack {source.ref} {source.version}"
        with _locked(folder.with_name(folder.name + LOCK_SUFFIX), self.build_timeout_s, what):
            if self._ready(folder):  # another process built it while we waited
                return folder
            failure = None if retry_failed else self._failure(folder)
            if failure is not None:
                raise EnvironmentBuildError(failure)
            self._build(source, kind, folder)
        self.prune(source, kind)
        return folder

    def build_log(self, source: PackSource) -> str:
        """The installers' output of the pack's ready environments (kept in `ready.json`,
        bounded like a failure's), one section per kind."""
        sections = []
        for kind in source.kinds():
            try:
                ready = json.loads((self.path(source, kind) / READY).read_text())
            except (OSError, ValueError):
                continue
            sections.append(f"[{kind}]\n{ready.get('log') or ''}".rstrip())
        return "\n\n".join(sections)

    def _ready(self, folder: Path) -> bool:
        marker = folder / READY
        if not marker.is_file():
            return False
        with contextlib.suppress(OSError):
            os.utime(marker)  # "last used", for prune
        return True

    def _failure(self, folder: Path, *, ignore_age: bool = False) -> str | None:
        path = folder.with_name(folder.name + FAILED_SUFFIX)
        try:
            age = time.time() - path.stat().st_mtime
            if not ignore_age and age > self.failure_retry_s:
                return None
            return str(json.loads(path.read_text()).get("error") or "environment build failed")
        except (OSError, ValueError):
            return None

    def _build(self, source: PackSource, kind: str, folder: Path) -> None:
        failed = folder.with_name(folder.name + FAILED_SUFFIX)
        shutil.rmtree(folder, ignore_errors=True)  # a crashed build's leftovers
        started = time.monotonic()
        try:
            if kind == PYTHON:
                details = self._build_python(source, folder)
            else:
                details = self._build_node(source, folder)
        except EnvironmentBuildError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            failed.write_text(json.dumps({"error": exc.message, "failed_at": time.time()}))
            raise
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with contextlib.suppress(FileNotFoundError):
            failed.unlink()
        details.update({"kind": kind, "pack": source.ref, "owner": source.owner,
                        "version": source.version, "key": self.key(source, kind),
                        "built_at": time.time(),
                        "build_seconds": round(time.monotonic() - started, 3)})
        tmp = folder / f".{READY}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(details, indent=1))
        os.replace(tmp, folder / READY)

    def _run(self, source: PackSource, folder: Path, script: str, what: str,
             shown: Sequence[str] = ()) -> str:
        """Run the shell `script` in a sandbox of the pack's owner showing the pack and `shown`
        read-only and `folder` as an empty tmpfs; the script ends with `tar -cf - .` of
        `folder` on its standard output, unpacked here into the real `folder`. Its log (what it
        wrote to stderr) is returned, or is the EnvironmentBuildError's message."""
        box = Sandbox(host=self.host, owner=sandbox_owner(source.owner),
                      read_only=tuple(dict.fromkeys([str(source.folder), *shown])),
                      outputs=(str(folder),), network=True, limits=self.limits,
                      output_mb=self.output_mb, cwd=str(source.folder))
        folder.mkdir(parents=True)
        try:
            proc = sandboxes.spawn(box, ["/bin/sh", "-ec", script],
                                   box.environment(build_environment()),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        except RunnerError as exc:
            raise EnvironmentBuildError(f"{what} could not start: {exc.message}") from exc
        log: list[bytes] = []
        reader = threading.Thread(target=_collect, args=(proc.stderr, log), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            proc.signal_group(signal.SIGKILL)

        timer = threading.Timer(self.build_timeout_s, expire)
        timer.start()
        unpacked: EnvironmentBuildError | None = None
        try:
            assert proc.stdout is not None
            try:
                _unpack_output(proc.stdout, folder)
            except EnvironmentBuildError as exc:  # the installer's own failure comes first
                unpacked = exc
            code = proc.wait()
        except BaseException:
            proc.signal_group(signal.SIGKILL)
            proc.wait()
            raise
        finally:
            timer.cancel()
            reader.join(timeout=5)
        output = b"".join(log).decode(errors="replace")
        if code != 0:
            if timed_out.is_set():
                raise EnvironmentBuildError(
                    f"{what} timed out after {self.build_timeout_s:g} s\n{_tail(output)}")
            raise EnvironmentBuildError(
                f"{what} failed (exit code {code}): {_headline(output)[:500]}\n"
                f"{_tail(output)}")
        if unpacked is not None:
            raise unpacked
        return output

    def _build_python(self, source: PackSource, folder: Path) -> dict[str, Any]:
        _check_dependency_files(dependency_files.check_python, source.folder)
        base = find_python(source.python)
        python = folder / "bin" / "python"
        requirements = source.folder / REQUIREMENTS
        spec = importlib.util.find_spec("pip")
        shown = list(sandboxes.installation_of(base))
        if spec is not None and spec.origin:
            # Fast: a venv without pip (≈50 ms), filled by this process's pip (`--python`),
            # shown read-only.
            pip_dir = Path(spec.origin).parent
            shown.append(str(pip_dir))
            install = (f"{_q(base)} {_q(pip_dir)} --python {_q(python)} install --no-input "
                       f"-r {_q(requirements)}")
            script = f"{_q(base)} -m venv --without-pip {_q(folder)}\n"
        else:
            install = f"{_q(python)} -m pip install --no-input -r {_q(requirements)}"
            script = f"{_q(base)} -m venv {_q(folder)}\n"
        script += f"{install} 1>&2\ntar -C {_q(folder)} -cf - .\n"
        output = self._run(source, folder, script, f"pip install -r {REQUIREMENTS}", shown)
        return {"interpreter": str(python), "base_python": base,
                "python_version": _python_version(base), "log": _tail(output)}

    def _build_node(self, source: PackSource, folder: Path) -> dict[str, Any]:
        _check_dependency_files(dependency_files.check_node, source.folder)
        npm = shutil.which("npm")
        if not npm:
            raise EnvironmentBuildError("npm is not installed on this worker")
        present = [name for name in NODE_FILES if (source.folder / name).is_file()]
        locked = any(n in present for n in ("package-lock.json", "npm-shrinkwrap.json"))
        command = "ci" if locked else "install"
        copies = "".join(f"cp {_q(source.folder / n)} {_q(folder / n)}\n" for n in present)
        script = (f"{copies}cd {_q(folder)}\n"
                  f"{_q(npm)} {command} --omit=dev --no-audit --no-fund 1>&2\n"
                  f"tar -C {_q(folder)} -cf - .\n")
        output = self._run(source, folder, script, f"npm {command}")
        return {"node_modules": str(folder / "node_modules"), "node_version": _node_version(),
                "log": _tail(output)}

    # -- cleaning up ------------------------------------------------------------------------
    def prune(self, source: PackSource, kind: str, *, keep: int = 3,
              idle_s: float = 3600.0) -> list[Path]:
        """Remove the pack's older environments of `kind`: beyond the `keep` most recently
        used, idle for `idle_s`, and not being built. Returns what was removed."""
        current = self.path(source, kind)
        parent = current.parent
        if not parent.is_dir():
            return []
        ready = []
        for folder in parent.iterdir():
            marker = folder / READY
            if folder.is_dir() and marker.is_file() and folder != current:
                ready.append((marker.stat().st_mtime, folder))
        ready.sort(reverse=True)
        removed = []
        now = time.time()
        for used_at, folder in ready[max(keep - 1, 0):]:
            lock = folder.with_name(folder.name + LOCK_SUFFIX)
            if now - used_at < idle_s or _is_locked(lock):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            for leftover in (lock, folder.with_name(folder.name + FAILED_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            removed.append(folder)
        return removed


def _check_dependency_files(check: Callable[[Path], None], folder: Path) -> None:
    """Refuse, before an installer reads them, dependency files that reach outside the pack
    (checked at registration too; the folder may have changed since). pip and npm are thus never
    given a file from outside the pack, so their output, kept as env_error, cannot quote one."""
    try:
        check(folder)
    except dependency_files.DependencyFileError as exc:
        raise EnvironmentBuildError(f"refused before installing: {exc}") from exc


def sandbox_owner(owner: str) -> int:
    """A PackSource owner ("system" or a tenant id) as a sandbox owner (0 for system)."""
    return 0 if owner == "system" else int(owner)


def _q(value: str | Path) -> str:
    return shlex.quote(str(value))


def _collect(stream: Any, into: list[bytes], limit: int = 1 << 20) -> None:
    """Read `stream` to its end, keeping its last `limit` bytes or so."""
    kept = 0
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        into.append(chunk)
        kept += len(chunk)
        while kept > limit and len(into) > 1:
            kept -= len(into.pop(0))


def _unpack_output(stream: Any, folder: Path) -> None:
    """Unpack a build's tar stream into `folder`: plain files, folders and links only, every
    name inside `folder`, owned by this process and readable by anyone, no set-id bits. Links
    may point anywhere: they are resolved inside sandboxes, never followed here."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise EnvironmentBuildError(f"the build wrote {member.name!r} outside "
                                                f"its folder")
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    continue
                if member.islnk() and (PurePosixPath(member.linkname).is_absolute()
                                       or ".." in PurePosixPath(member.linkname).parts):
                    raise EnvironmentBuildError(f"the build linked {member.name!r} outside "
                                                f"its folder")
                member.uid, member.gid, member.uname, member.gname = (
                    os.getuid(), os.getgid(), "", "")
                member.mode = (member.mode & 0o755) | (0o755 if member.isdir() else 0o644)
                tar.extract(member, folder, set_attrs=not member.issym(), **_TAR_FILTER)
    except (tarfile.TarError, OSError) as exc:
        raise EnvironmentBuildError(f"the build's output could not be unpacked: {exc}") from exc


# tarfile's extraction filters exist from Python 3.11.4; `_unpack_output` checks on its own.
_TAR_FILTER: dict[str, Any] = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}


def _link_node_modules(pack_folder: Path, node_modules: Path) -> None:
    """`<pack>/node_modules` → the environment's, so ES-module imports (which ignore NODE_PATH)
    resolve too. A pack that ships a real node_modules folder keeps it; a read-only pack folder
    is left alone (NODE_PATH still serves `require`)."""
    link = pack_folder / "node_modules"
    if link.is_symlink():
        with contextlib.suppress(OSError):
            if os.readlink(link) == str(node_modules):
                return
    elif link.exists():
        return
    tmp = pack_folder / f".node_modules.{uuid.uuid4().hex}"
    try:
        os.symlink(node_modules, tmp)
        os.replace(tmp, link)  # atomic: a run starting now sees the old or the new one
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


@lru_cache(maxsize=8)
def of_run_dir(run_dir: Path, host: Host, limits: Limits) -> Environments:
    """The environments of a host's run dir (`<run_dir>/envs`), shared by its worker and sensor
    processes (builds are serialised by file locks), built in sandboxes of `host` with
    `limits`."""
    return Environments(run_dir.resolve() / "envs", host, limits=limits)
