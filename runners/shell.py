"""Shell actions: the script gets the stdin document and ATTUNE_PARAM_<NAME> variables."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

from .base import RunnerError, RunRequest
from .process import ProcessRunner, base_environment

_NOT_NAME = re.compile(r"[^A-Z0-9_]")
# Larger values stay on stdin only: the kernel refuses environment strings over 128 KiB.
MAX_ENV_VALUE_BYTES = 32 * 1024


def _default_shell() -> str:
    return "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"


def parameter_environment(request: RunRequest) -> dict[str, str]:
    """ATTUNE_PARAM_<NAME> for every non-secret parameter; strings as-is, the rest as JSON.

    A value over MAX_ENV_VALUE_BYTES is left out (it is in the stdin document anyway).
    """
    env: dict[str, str] = {}
    for name, value in request.parameters.items():
        if name in request.secret_parameters:
            continue
        key = "ATTUNE_PARAM_" + _NOT_NAME.sub("_", str(name).upper())
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text.encode()) <= MAX_ENV_VALUE_BYTES and "\x00" not in text:
            env[key] = text
    return env


def _shebang(path: Path) -> list[str] | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(512)
    except OSError as exc:
        raise RunnerError("invalid_action", f"Cannot read {path}: {exc}") from exc
    if not first.startswith(b"#!"):
        return None
    words = shlex.split(first[2:].decode("utf-8", "replace").strip())
    return words or None


class ShellRunner(ProcessRunner):
    """Runs the script with its shebang interpreter (bash when it has none)."""

    uses_result_pipe = False

    def command(self, request: RunRequest, result_fd: int | None) -> list[str]:
        if request.entry_point is None:
            raise RunnerError("invalid_action", "A shell action needs an entry point or code")
        interpreter = _shebang(request.entry_point) or [
            request.interpreter or _default_shell()
        ]
        return [*interpreter, str(request.entry_point)]

    def environment(self, request: RunRequest) -> dict[str, str]:
        """The base environment plus ATTUNE_PARAM_<NAME> of the non-secret parameters."""
        env = base_environment(request)
        env.update(parameter_environment(request))
        return env
