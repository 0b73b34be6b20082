"""Python actions, warm: forked from a pre-imported interpreter per pack environment
(`forkserver.py`); cold when no server can take the run: `python -I wrappers/python_wrapper.py
RESULT_FD ENTRY` in the pack folder. Both run the same wrapper, so an action cannot tell."""

from __future__ import annotations

from pathlib import Path

from .base import RunnerError, RunRequest
from .environments import find_python
from .process import ProcessRunner, WarmStart

WRAPPER = Path(__file__).resolve().parent / "wrappers" / "python_wrapper.py"


class PythonRunner(ProcessRunner):
    """Runs `run(**parameters)` or the module as a script (packs.md, "How an action runs").

    The interpreter is an absolute path (stack-notes P11: never a shim): the request's (a pack
    virtualenv) or the base python of this process (never the platform's virtualenv, which a
    sandbox does not show). `-I` keeps PYTHON* variables and the user site out; the wrapper
    puts the SDK, the entry point's folder and the pack on sys.path.
    """

    def interpreter(self, request: RunRequest) -> str:
        interpreter = request.interpreter or find_python()
        if not interpreter:
            raise RunnerError("runner_unavailable", "No python interpreter is known")
        return interpreter

    def command(self, request: RunRequest, result_fd: int | None) -> list[str]:
        if request.entry_point is None:
            raise RunnerError("invalid_action", "A python action needs an entry point or code")
        # -B: no bytecode in pack folders, so a reloaded file can never run from a stale .pyc
        return [self.interpreter(request), "-I", "-B", str(WRAPPER), str(result_fd),
                str(request.entry_point)]

    def warm_start(self, request: RunRequest, argv: list[str]) -> WarmStart:
        """The pack environment's interpreter runs the wrapper in the forked child itself."""
        return WarmStart(argv[0], str(request.entry_point), None)
