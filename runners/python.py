"""Python actions: `python -I wrappers/python_wrapper.py RESULT_FD ENTRY` in the pack folder."""

from __future__ import annotations

import sys
from pathlib import Path

from .base import RunnerError, RunRequest
from .process import ProcessRunner

WRAPPER = Path(__file__).resolve().parent / "wrappers" / "python_wrapper.py"


class PythonRunner(ProcessRunner):
    """Runs `run(**parameters)` or the module as a script (packs.md, "How an action runs").

    The interpreter is an absolute path (stack-notes P11: never a shim): the request's (a pack
    virtualenv) or this process's own `sys.executable`. `-I` keeps PYTHON* variables and the
    user site out; the wrapper puts the SDK, the entry point's folder and the pack on sys.path.
    """

    def command(self, request: RunRequest, result_fd: int | None) -> list[str]:
        if request.entry_point is None:
            raise RunnerError("invalid_action", "A python action needs an entry point or code")
        interpreter = request.interpreter or sys.executable
        if not interpreter:
            raise RunnerError("runner_unavailable", "No python interpreter is known")
        # -B: no bytecode in pack folders, so a reloaded file can never run from a stale .pyc
        return [interpreter, "-I", "-B", str(WRAPPER), str(result_fd), str(request.entry_point)]
