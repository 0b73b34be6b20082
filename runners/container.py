"""Container actions: one throwaway container per run through the Docker Engine API.

The image is pulled only when missing (`pull: if_missing`, the default; `always`, `never`).
The pack folder is mounted read-only at /action and is the working directory; the stdin
document is written to the container's stdin, which is then closed; stdout and stderr are read
as they come, capped and masked. Limits and isolation: `memory` (no extra swap) and `cpus`
(defaults and a maximum from the operator's `ContainerPolicy`), a pids limit, `network: none`
by default, no privileges, every capability dropped, no-new-privileges, a read-only root
filesystem with a small /tmp, and an unprivileged uid/gid instead of the image's USER (kept
only when the pack asks and the operator allows it). The container is removed after success,
failure, timeout and cancel, and when the calling greenthread dies.

The engine is the one `DOCKER_HOST` names, else the project's own (scripts/docker.sh), else
Docker's default socket. A stdout that is one JSON document becomes `result.output`.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig
from docker.utils import parse_repository_tag
from docker.utils.socket import frames_iter

from .base import (
    LineSplitter,
    Masker,
    Outcome,
    OutputLines,
    RunnerError,
    RunRequest,
    RunResult,
    error,
)
from .container_policy import memory_bytes
from .process import truncation_marker

log = logging.getLogger(__name__)

MOUNT = "/action"
PROJECT_SOCKET = Path(os.environ.get("ATTUNE_DOCKER_DIR", "/tmp/attune-docker")) / "docker.sock"  # noqa: S108
DEFAULTS = {"network": "none", "pull": "if_missing"}
PULL_POLICIES = ("if_missing", "always", "never")
PIDS_LIMIT = 256
TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}  # noqa: S108 - inside the container
LABEL = "attune.managed"
REMOVE_ATTEMPTS = 3
_INTERPRETERS = {".py": ["python3"], ".sh": ["sh"], ".js": ["node"], ".mjs": ["node"]}


def engine_url() -> str | None:
    """DOCKER_HOST, else the project's engine socket when it exists, else None (default)."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    try:
        present = PROJECT_SOCKET.exists()
    except PermissionError:
        # There, but closed to this user (not in the engine's group, scripts/docker.sh): name
        # it, so the run fails saying so instead of quietly trying another engine.
        present = True
    if present:
        return f"unix://{PROJECT_SOCKET}"
    return None


@lru_cache(maxsize=4)
def _client(base_url: str | None) -> docker.DockerClient:
    if base_url is None:
        return docker.from_env(version="auto")
    return docker.DockerClient(base_url=base_url, version="auto")


def docker_client() -> docker.DockerClient:
    """A client of the engine `engine_url` names (API version negotiated once)."""
    return _client(engine_url())


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """`container_config` checked and completed with the defaults."""

    image: str
    command: list[str]
    memory: str | int
    cpus: float
    network: str
    pull: str
    mount: bool
    # `UID:GID` the container runs as; None keeps the image's USER (pack opt-in, operator allow).
    user: str | None = None

    @classmethod
    def from_request(cls, request: RunRequest) -> ContainerSpec:
        """Validate the action's container_config against the operator's policy; RunnerError
        names the bad field (`resource_limit` above the maximum, `image_user_refused` when the
        pack wants its image's user and the operator does not allow it)."""
        policy = request.container_policy
        config: Mapping[str, Any] = {**DEFAULTS, "memory": policy.memory, "cpus": policy.cpus,
                                     **(request.container_config or {})}

        def bad(field: str, why: str) -> RunnerError:
            return RunnerError("invalid_container_config", f"container_config.{field}: {why}")

        image = config.get("image")
        if not isinstance(image, str) or not image.strip():
            raise bad("image", "required")
        memory = config["memory"]
        try:
            asked = memory_bytes(memory)
        except ValueError:
            raise bad("memory", "must be a size such as '256m'") from None
        if asked > memory_bytes(policy.max_memory):
            raise RunnerError("resource_limit", f"container_config.memory: {memory} is above "
                              f"the operator's maximum of {policy.max_memory} "
                              "(ATTUNE.container.maximum.memory)")
        try:
            cpus = float(config["cpus"])
        except (TypeError, ValueError):
            raise bad("cpus", "must be a number") from None
        if not 0 < cpus <= 64:
            raise bad("cpus", "must be between 0 and 64")
        if cpus > policy.max_cpus:
            raise RunnerError("resource_limit", f"container_config.cpus: {cpus:g} is above the "
                              f"operator's maximum of {policy.max_cpus:g} "
                              "(ATTUNE.container.maximum.cpus)")
        if request.keep_image_user and not policy.allow_image_user:
            raise RunnerError("image_user_refused",
                              "The pack asks to run containers as its image's user (pack.yaml "
                              "container.image_user), which this installation does not allow "
                              "(ATTUNE.container.allow_image_user); containers run as "
                              f"{policy.user}")
        user = None if request.keep_image_user else policy.user
        network = str(config["network"] or "none")
        if network == "host" or network.startswith("container:"):
            raise bad("network", "must be 'none' or a network name (never the host's)")
        pull = config["pull"]
        if pull not in PULL_POLICIES:
            raise bad("pull", f"must be one of {', '.join(PULL_POLICIES)}")
        # The pack folder (or an inline action's private folder) is mounted; never a bare
        # temporary directory that would expose other files.
        mount = request.entry_point is not None or any(
            (request.working_dir / name).is_file() for name in ("pack.yaml", "pack.yml"))
        return cls(image=image.strip(), command=_command(config.get("command"), request),
                   memory=memory.strip() if isinstance(memory, str) else memory, cpus=cpus,
                   network=network, pull=pull, mount=mount, user=user)


def _command(command: Any, request: RunRequest) -> list[str]:
    if isinstance(command, str) and command.strip():
        return shlex.split(command)
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        return list(command)
    if command not in (None, "", []):
        raise RunnerError("invalid_container_config",
                          "container_config.command: must be a string or a list of strings")
    if request.entry_point is None:
        raise RunnerError("invalid_container_config",
                          "container_config.command: required when the action has no "
                          "entry_point")
    relative = request.entry_point.resolve().relative_to(request.working_dir.resolve())
    inside = str(PurePosixPath(MOUNT) / relative.as_posix())
    return [*_interpreter(request.entry_point), inside]


def _interpreter(entry: Path) -> list[str]:
    """By shebang, else by suffix (.py → python3, .sh → sh, .js → node), else sh."""
    try:
        with entry.open("rb") as handle:
            first = handle.readline(512)
    except OSError as exc:
        raise RunnerError("invalid_action", f"Cannot read {entry.name}: {exc}") from exc
    if first.startswith(b"#!"):
        words = shlex.split(first[2:].decode("utf-8", "replace").strip())
        if words:
            return words
    return _INTERPRETERS.get(entry.suffix, ["sh"])


class _Capture:
    """Reads the attach stream to EOF in its own (green) thread, demultiplexed and capped, and
    hands its lines to `lines` as they come (live output) when given."""

    def __init__(self, sock: Any, keep: int, on_done: threading.Event,
                 lines: OutputLines | None = None) -> None:
        self.sock = sock
        self.keep = keep
        self.data = {1: bytearray(), 2: bytearray()}
        self.total = {1: 0, 2: 0}
        self.done = threading.Event()
        self._on_done = on_done
        self._lines = ({1: LineSplitter("stdout", lines), 2: LineSplitter("stderr", lines)}
                       if lines is not None else {})

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True, name="attune-container-read").start()

    def _read(self) -> None:
        try:
            for stream, chunk in frames_iter(self.sock, False):
                if stream not in self.data:
                    continue
                self.total[stream] += len(chunk)
                room = self.keep - len(self.data[stream])
                if room > 0:
                    self.data[stream] += chunk[:room]
                if self._lines:
                    self._lines[stream].feed(chunk)
        except (OSError, ValueError):
            pass  # the socket was closed under us (timeout, cancel): keep what was read
        finally:
            for splitter in self._lines.values():
                splitter.end()
            self.done.set()
            self._on_done.set()


def _write_stdin(sock: Any, data: bytes) -> None:
    """Write the stdin document, then half-close: the container's stdin gets EOF."""
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the container exited without reading its stdin


def _decode(data: bytes, cut: bool) -> str:
    if not cut:
        return data.decode("utf-8", "replace")
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


class ContainerRunner:
    """Runs the action in a fresh container; `cancel` stops and removes it."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._canceled = threading.Event()
        self._wake = threading.Event()

    def cancel(self) -> None:
        """Stop the container (SIGTERM, SIGKILL after the grace); safe from another thread."""
        self._canceled.set()
        self._wake.set()

    def run(self, request: RunRequest) -> RunResult:
        """Pull if needed, run, collect; failures are data in the result."""
        started = time.monotonic()
        if self._canceled.is_set():
            return self._canceled_result(started)
        try:
            spec = ContainerSpec.from_request(request)
            client = self._client or docker_client()
            _remove_orphans_once(client)
            self._ensure_image(client, spec)
            if self._canceled.is_set():
                return self._canceled_result(started)
            return self._run(client, spec, request, started)
        except RunnerError as exc:
            return RunResult(outcome=Outcome.FAILED, error=error(exc.error_type, exc.message),
                             duration_ms=_ms(started))
        except (DockerException, requests.RequestException) as exc:
            return RunResult(outcome=Outcome.FAILED,
                             error=error("container_error", f"Docker engine: {exc}"),
                             duration_ms=_ms(started))

    # -- image --------------------------------------------------------------------------------
    @staticmethod
    def _ensure_image(client: docker.DockerClient, spec: ContainerSpec) -> None:
        if spec.pull != "always":
            try:
                client.images.get(spec.image)
                return
            except ImageNotFound:
                if spec.pull == "never":
                    raise RunnerError(
                        "image_missing",
                        f"Image {spec.image} is not on this worker and pull is 'never'",
                    ) from None
        repository, tag = parse_repository_tag(spec.image)
        log.info("pulling image %s", spec.image)
        try:
            client.images.pull(repository, tag=tag or "latest")
        except APIError as exc:  # ImageNotFound (podman) is an APIError too
            raise RunnerError("image_pull_failed",
                              f"Could not pull image {spec.image}: {exc.explanation or exc}"
                              ) from exc

    # -- one container ---------------------------------------------------------------------------
    def _run(self, client: docker.DockerClient, spec: ContainerSpec, request: RunRequest,
             started: float) -> RunResult:
        api = client.api
        masker = request.masker()
        keep = request.max_output_bytes + max(masker.longest - 1, 0)
        stdin = json.dumps(request.stdin_document(), default=str).encode()
        deadline = started + request.timeout_s
        host_config = api.create_host_config(
            binds=({str(request.working_dir.resolve()): {"bind": MOUNT, "mode": "ro"}}
                   if spec.mount else None),
            network_mode=spec.network,
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            nano_cpus=round(spec.cpus * 1e9),
            pids_limit=PIDS_LIMIT,
            privileged=False,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs=TMPFS,
            init=True,  # signals reach the action (PID 1 ignores SIGTERM otherwise)
            log_config=LogConfig(type=LogConfig.types.NONE),  # output is read live, not stored
        )
        container_id = None
        sock = None
        try:
            created = api.create_container(
                spec.image, spec.command, stdin_open=True,
                working_dir=MOUNT if spec.mount else "/",
                name=f"attune-exec-{request.execution_id}-{uuid.uuid4().hex[:8]}",
                user=spec.user,  # None: the image's USER (allowed by the operator)
                labels=_labels(request), host_config=host_config,
                environment={"ATTUNE_EXECUTION_ID": str(request.execution_id),
                             "ATTUNE_ACTION_REF": request.action_ref},
            )
            container_id = created["Id"]
            sock = api.attach_socket(container_id,
                                     params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            capture = _Capture(sock, keep, self._wake, request.output_lines)
            capture.start()
            api.start(container_id)
            threading.Thread(target=_write_stdin, args=(sock, stdin), daemon=True,
                             name="attune-container-stdin").start()
            ended_by = self._supervise(api, container_id, capture, deadline,
                                       request.kill_grace_s)
            exit_code, oom = self._exit_status(api, container_id, ended_by)
            capture.done.wait(2.0)
            return self._result(request, masker, spec, ended_by, exit_code, oom, capture,
                                _ms(started))
        finally:
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()
            if container_id is not None:
                _remove(api, container_id)

    def _supervise(self, api: Any, container_id: str, capture: _Capture, deadline: float,
                   grace: float) -> str | None:
        """Wait for the container to exit; "timeout"/"canceled" when we had to stop it."""
        while True:
            # Output ends when the action exits, or when it closed stdout and stderr early.
            if capture.done.is_set() and _exited(api, container_id):
                return None
            if self._canceled.is_set():
                self._stop(api, container_id, grace)
                return "canceled"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stop(api, container_id, grace)
                return "timeout"
            self._wake.wait(min(remaining, 0.5))
            if not self._canceled.is_set():
                self._wake.clear()

    @staticmethod
    def _stop(api: Any, container_id: str, grace: float) -> None:
        with contextlib.suppress(NotFound, APIError, requests.RequestException):
            api.stop(container_id, timeout=max(int(grace), 0))

    def _exit_status(self, api: Any, container_id: str,
                     ended_by: str | None) -> tuple[int | None, bool]:
        try:
            status = api.wait(container_id, timeout=30)
            state = api.inspect_container(container_id)["State"]
        except (APIError, requests.RequestException):
            if ended_by is None:
                raise
            return None, False
        return int(status.get("StatusCode", -1)), bool(state.get("OOMKilled"))

    @staticmethod
    def _canceled_result(started: float) -> RunResult:
        return RunResult(outcome=Outcome.CANCELED, error=error("canceled", "Execution canceled"),
                         duration_ms=_ms(started))

    @staticmethod
    def _result(request: RunRequest, masker: Masker, spec: ContainerSpec, ended_by: str | None,
                exit_code: int | None, oom: bool, capture: _Capture,
                duration_ms: int) -> RunResult:
        limit = request.max_output_bytes
        texts, truncated = [], False
        for stream in (1, 2):
            cut = capture.total[stream] > limit
            text = _decode(masker.cut(bytes(capture.data[stream]), limit), cut)
            if cut:
                text += truncation_marker(limit)
                truncated = True
            texts.append(text)
        stdout, stderr = texts
        output = None
        if stdout.strip() and not capture.total[1] > limit:
            with contextlib.suppress(ValueError):
                output = json.loads(stdout)
        if ended_by == "canceled":
            outcome, err = Outcome.CANCELED, error("canceled", "Execution canceled")
        elif ended_by == "timeout":
            outcome = Outcome.FAILED
            err = error("timeout", f"Action timed out after {request.timeout_s:g} s")
        elif oom:
            outcome = Outcome.FAILED
            err = error("oom_killed",
                        f"The container exceeded its memory limit ({spec.memory})")
        elif exit_code != 0:
            outcome = Outcome.FAILED
            err = error("nonzero_exit", f"Action exited with code {exit_code}")
        else:
            outcome, err = Outcome.SUCCEEDED, None
        return RunResult(outcome=outcome, output=masker.value(output), exit_code=exit_code,
                         stdout=stdout, stderr=stderr, error=err, truncated=truncated,
                         duration_ms=duration_ms)


def _exited(api: Any, container_id: str) -> bool:
    """Has the container stopped? Waits up to half a second for it."""
    try:
        api.wait(container_id, timeout=0.5)
        return True
    except requests.RequestException:  # still running (a read timeout)
        return False


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _labels(request: RunRequest) -> dict[str, str]:
    return {LABEL: "true", "attune.execution_id": str(request.execution_id),
            "attune.action_ref": request.action_ref, "attune.worker_pid": str(os.getpid()),
            "attune.worker_host": socket.gethostname()}


def _remove(api: Any, container_id: str) -> None:
    """Force-remove (kills a running one); retried, since a leak is worse than a delay."""
    for attempt in range(1, REMOVE_ATTEMPTS + 1):
        try:
            api.remove_container(container_id, force=True)
            return
        except NotFound:
            return
        except (APIError, requests.RequestException):
            if attempt == REMOVE_ATTEMPTS:
                log.exception("could not remove container %s", container_id)
                return
            time.sleep(0.2 * attempt)


def remove_orphans(client: docker.DockerClient) -> list[str]:
    """Remove the containers a dead worker process on this host left behind (a crash or a
    SIGKILL skips every `finally`). Returns their ids."""
    host = socket.gethostname()
    removed = []
    for item in client.api.containers(all=True, filters={"label": f"{LABEL}=true"}):
        labels = item.get("Labels") or {}
        if labels.get("attune.worker_host") != host:
            continue
        try:
            pid = int(labels.get("attune.worker_pid", ""))
            os.kill(pid, 0)
            continue  # its worker is alive: it removes the container itself
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        _remove(client.api, item["Id"])
        removed.append(item["Id"])
    return removed


_swept: set[int] = set()


def _remove_orphans_once(client: docker.DockerClient) -> None:
    """The first container run of a process sweeps what dead workers left."""
    if id(client) in _swept:
        return
    _swept.add(id(client))
    try:
        removed = remove_orphans(client)
    except (DockerException, requests.RequestException):
        log.warning("could not look for orphaned containers", exc_info=True)
        return
    if removed:
        log.warning("removed %s container(s) left by dead workers", len(removed))
