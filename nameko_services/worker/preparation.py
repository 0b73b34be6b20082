"""Turn a claimed execution into a complete `RunRequest`: action, pack folder, secrets, token.

Templating of `http_config` happens here (runners stay pure). Anything that makes the action
impossible to run on a worker raises `Rejected`, which fails the execution with its own error
type instead of `worker_error`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from runners import UnknownRunnerError, canonical_runner_type, sandbox
from runners.base import RunRequest
from runners.environments import EnvironmentBuildError

from ..domain import auth, pack_store, sandboxing, templating
from ..domain import secrets as secrets_repo
from ..domain.crypto import Cipher
from ..domain.settings import Settings
from . import pack_environments

# Run by the executor, never by a worker process.
EXECUTOR_RUNNERS = frozenset({"workflow", "inquiry"})
CODE_FILE_NAMES = {"python": "action.py", "node": "action.js", "shell": "action.sh"}
MIN_RESULT_BYTES = 4 * 1024 * 1024


class Rejected(Exception):
    """The execution cannot run here; it fails with `error_type` and a clear message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(slots=True)
class Prepared:
    """A request ready for its runner, and the private folder to remove afterwards."""

    runner_type: str
    request: RunRequest
    temp_dir: Path | None = None
    pack: dict[str, Any] | None = None  # the action's pack row (its environment, if any)
    pack_folder: Path | None = None  # the pack's folder on this host (pack_store)

    def cleanup(self) -> None:
        """Remove the private folder of an inline-code action."""
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def prepare(
    conn: Connection, settings: Settings, cipher: Cipher, row: Mapping[str, Any],
    action: dict[str, Any] | None, pack: dict[str, Any] | None,
) -> Prepared:
    """Everything the runner needs for this (running) execution row, its action and that
    action's pack (read with the claim: repository.claim)."""
    tenant_id = row["tenant_id"]
    if action is None:
        raise Rejected("action_missing", f"Action {row['action_ref']} no longer exists")
    try:
        runner_type = canonical_runner_type(action["runner_type"])
    except UnknownRunnerError as exc:
        raise Rejected("unsupported_runner", str(exc)) from exc
    if runner_type in EXECUTOR_RUNNERS:
        raise Rejected(
            "unsupported_runner",
            f"Action {action['ref']} has runner_type {runner_type!r}, which the executor runs;"
            " a worker never runs it",
        )
    if action.get("with_items") and row["item_index"] is None:
        raise Rejected(
            "unsupported_runner",
            f"Execution {row['id']} is the with_items parent of {action['ref']}; the executor"
            " runs it as one child per item",
        )

    parameters = dict(row["parameters"] or {})
    secret_values = _secrets(conn, cipher, tenant_id, action.get("secrets") or [])
    # A workflow task's `timeout:` (executions.timeout_seconds) wins over the action's own;
    # the operator's maximum bounds both.
    timeout = min(float(row.get("timeout_seconds") or action.get("timeout")
                        or settings.worker.default_timeout_seconds),
                  settings.sandbox.max_timeout_seconds)
    token = auth.issue_token(
        settings.jwt_secret,
        user_id=0,
        tenant_id=tenant_id,
        role="executor",
        token_type="execution",
        ttl_seconds=max(settings.execution_token_ttl_seconds, int(timeout) + 60),
        execution_id=row["id"],
    )
    context = {
        "execution_id": row["id"],
        "action_ref": row["action_ref"],
        "attempt": row["attempt"],
        "item": row["item"],
        "item_index": row["item_index"],
        "api_url": settings.api_url,
        # Inside its sandbox an action reaches the API through this socket only (SDK).
        "api_socket": sandbox.API_SOCKET,
        "token": token,
    }
    http_config = None
    if runner_type == "http":
        http_config = _render_http_config(action, parameters, secret_values)
    code_dir = sandboxing.code_dir(settings, sandboxing.owner_of(tenant_id))
    folder = pack_folder(conn, settings, pack)
    working_dir, entry_point, temp_dir = _locate(action, pack, folder, runner_type, row["id"],
                                                 code_dir)
    cap = settings.worker.max_output_size_bytes
    request = RunRequest(
        execution_id=row["id"],
        action_ref=row["action_ref"],
        runner_type=runner_type,
        working_dir=working_dir,
        entry_point=entry_point,
        parameters=parameters,
        secrets=secret_values,
        secret_parameters=frozenset(row["secret_parameters"] or []),
        context=context,
        timeout_s=timeout,
        kill_grace_s=settings.worker.cancel_grace_seconds,
        max_output_bytes=cap,
        max_result_bytes=max(cap, MIN_RESULT_BYTES),
        http_config=http_config,
        destination_policy=settings.http_runner.policy,
        container_config=action.get("container_config"),
        container_policy=settings.container,
        keep_image_user=keeps_image_user(pack),
        sandbox=sandboxing.for_action(
            settings, tenant_id, pack, settings.sandbox.limits_for(action.get("limits")),
            [code_dir] if temp_dir else [folder]),
    )
    return Prepared(runner_type, request, temp_dir, pack, folder)


def pack_folder(conn: Connection, settings: Settings, pack: Mapping[str, Any] | None
                ) -> Path | None:
    """The pack's folder on this worker host, fetched into its cache on first use
    (pack_store.local_folder); Rejected (`pack_unavailable`) when its content cannot be had."""
    try:
        return pack_store.local_folder(conn, pack_store.cache_root(settings), pack)
    except pack_store.PackContentError as exc:
        raise Rejected("pack_unavailable", exc.message) from exc


def keeps_image_user(pack: Mapping[str, Any] | None) -> bool:
    """Does the pack ask (pack.yaml `container: {image_user: true}`) to run its containers as
    their image's USER? The runner refuses it unless ATTUNE.container.allow_image_user."""
    container = ((pack or {}).get("meta") or {}).get("container")
    return isinstance(container, Mapping) and container.get("image_user") is True


def use_environment(prepared: Prepared, settings: Settings, engine: Engine) -> None:
    """Point the request at its pack's environment (virtualenv python, node_modules), building
    it now if this host lacks it; call outside any transaction (a build takes a while)."""
    try:
        env = pack_environments.for_run(engine, settings, prepared.pack, prepared.pack_folder,
                                        prepared.runner_type)
    except EnvironmentBuildError as exc:
        ref = prepared.pack["ref"] if prepared.pack else "?"
        raise Rejected(exc.error_type, f"The {prepared.runner_type} environment of pack {ref}"
                       f" could not be built: {exc.message}") from exc
    if env is not None:
        request = prepared.request
        assert request.sandbox is not None
        prepared.request = dataclasses.replace(
            request,
            interpreter=env.interpreter(prepared.runner_type) or request.interpreter,
            module_paths=env.module_paths(prepared.runner_type),
            sandbox=dataclasses.replace(request.sandbox, read_only=(
                *request.sandbox.read_only, *sandboxing.environment_paths(env))),
        )


def _secrets(
    conn: Connection, cipher: Cipher, tenant_id: int, names: list[str]
) -> dict[str, str]:
    if not names:
        return {}
    values = secrets_repo.get_values(conn, cipher, tenant_id, names)
    missing = sorted(set(names) - set(values))
    if missing:
        raise Rejected(
            "secret_missing", f"Secret(s) not set for this tenant: {', '.join(missing)}"
        )
    return values


def _render_http_config(
    action: Mapping[str, Any], parameters: dict[str, Any], secret_values: dict[str, str]
) -> dict[str, Any]:
    context = {
        "params": parameters,
        "execution": {"params": parameters},
        "secret": secret_values,
        "item": parameters.get("item"),
    }
    try:
        rendered = templating.render(action.get("http_config") or {}, context)
    except templating.TemplateError as exc:
        raise Rejected("template", str(exc)) from exc
    if not isinstance(rendered, dict):
        raise Rejected("template", "http_config must render to a mapping")
    return rendered


def _locate(
    action: Mapping[str, Any], pack: Mapping[str, Any] | None, pack_dir: Path | None,
    runner_type: str, execution_id: int, code_dir: Path,
) -> tuple[Path, Path | None, Path | None]:
    """(working dir, entry point, temp dir to remove afterwards) for the action. Inline code
    is written under the owner's `code_dir`, readable by the owner's sandboxes."""
    if action.get("code"):
        code_dir.mkdir(parents=True, exist_ok=True)
        temp_dir = Path(tempfile.mkdtemp(prefix=f"exec-{execution_id}-", dir=code_dir))
        entry = temp_dir / CODE_FILE_NAMES.get(runner_type, "action")
        try:
            entry.write_text(action["code"], encoding="utf-8")
            entry.chmod(0o644)
            temp_dir.chmod(0o755)  # the sandbox's uid reads the tenant's own code
        except OSError:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        return temp_dir, entry, temp_dir
    entry_point = action.get("entry_point")
    if not entry_point:
        if runner_type in CODE_FILE_NAMES:
            raise Rejected("invalid_action", f"Action {action['ref']} has no entry_point or code")
        folder = pack_dir if pack_dir and pack_dir.is_dir() else Path(tempfile.gettempdir())
        return folder, None, None
    if pack_dir is None or not pack_dir.is_dir():
        raise Rejected(
            "invalid_action",
            f"The folder of pack {pack['ref'] if pack else '?'} is not available on this worker",
        )
    root = pack_dir.resolve()
    entry = (root / entry_point).resolve()
    if not entry.is_relative_to(root):
        raise Rejected("invalid_action", f"Entry point {entry_point} lies outside its pack folder")
    if not entry.is_file():
        raise Rejected(
            "invalid_action", f"Entry point {entry_point} of {action['ref']} does not exist"
        )
    return root, entry, None
