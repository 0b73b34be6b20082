"""Node actions: `node wrappers/node_wrapper.js RESULT_FD ENTRY` in the pack folder."""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from .base import RunnerError, RunRequest
from .process import ProcessRunner

WRAPPER = Path(__file__).resolve().parent / "wrappers" / "node_wrapper.js"
SDK_DIR = Path(__file__).resolve().parent / "sdk" / "node"


@lru_cache(maxsize=1)
def _node_binary() -> str | None:
    found = shutil.which("node") or shutil.which("nodejs")
    return os.path.realpath(found) if found else None


class NodeRunner(ProcessRunner):
    """Runs `await run(params)` of `module.exports` or the module as a script."""

    def command(self, request: RunRequest, result_fd: int | None) -> list[str]:
        if request.entry_point is None:
            raise RunnerError("invalid_action", "A node action needs an entry point or code")
        node = request.interpreter or _node_binary()
        if not node:
            raise RunnerError("runner_unavailable", "node is not installed on this worker")
        return [node, str(WRAPPER), str(result_fd), str(request.entry_point)]

    def environment(self, request: RunRequest) -> dict[str, str]:
        """NODE_PATH: the pack's node_modules (its environment), then the SDK (`attune`)."""
        env = super().environment(request)
        env["NODE_PATH"] = os.pathsep.join([*request.module_paths, str(SDK_DIR)])
        return env
