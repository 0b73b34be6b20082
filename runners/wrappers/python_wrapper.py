"""Runs one python action: `python -I python_wrapper.py RESULT_FD ENTRY` (the cold path), or
`run_action` called in a child of `python_forkserver.py` (the warm path).

Reads the stdin document, configures the `attune` SDK, then either calls the entry point's
`run(**parameters)` (its return value goes to the result pipe as {"output": ...}) or, when the
module defines no `run`, executes it as a script (`__name__ == "__main__"`, sys.exit honoured).
An exception writes {"error": {"type", "message"}} to the result pipe, the traceback to stderr,
and exits 1. The result pipe keeps the return value apart from whatever the action prints.
"""

from __future__ import annotations

# Only cheap imports at start-up: every action pays for them (stack-notes §5).
import _ast as ast
import json
import os
import sys

TYPE_CHECKING = False  # typing's flag without importing typing (mypy reads it the same way)
if TYPE_CHECKING:
    from types import CodeType

WRAPPER_FILE = os.path.abspath(__file__)
SDK_DIR = os.path.join(os.path.dirname(os.path.dirname(WRAPPER_FILE)), "sdk", "python")
# Frames of these files are the platform's, not the action's: left out of tracebacks.
PLATFORM_FILES = {WRAPPER_FILE, os.path.join(os.path.dirname(WRAPPER_FILE), "python_forkserver.py")}


def _defines_run(tree: ast.Module) -> bool:
    """Does the module bind `run` at top level (def, assignment or import)?"""

    def scan(body: list) -> bool:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
                return True
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "run" for t in targets):
                    return True
            if isinstance(node, (ast.ImportFrom, ast.Import)) and any(
                (alias.asname or alias.name) == "run" for alias in node.names
            ):
                return True
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                nested = list(node.body) + list(getattr(node, "orelse", []))
                nested += list(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    nested += handler.body
                if scan(nested):
                    return True
        return False

    return scan(tree.body)


def _write_result(fd: int, document: dict) -> None:
    data = json.dumps(document, default=str).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _print_traceback(exc: BaseException) -> None:
    """The action's traceback without the wrapper's own frames."""
    import runpy
    import traceback

    skip = {*PLATFORM_FILES, runpy.__file__}
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


def compile_run_module(entry: str, source: bytes) -> CodeType | None:
    """The module's code when it defines `run`; None when it runs as a script (by runpy)."""
    tree = compile(source, entry, "exec", ast.PyCF_ONLY_AST)
    assert isinstance(tree, ast.Module)  # mode "exec" parses to a Module
    return compile(tree, entry, "exec") if _defines_run(tree) else None


def _load_module(entry: str, code: CodeType) -> object:
    module = type(sys)("__attune_action__")
    module.__file__ = entry
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)  # noqa: S102 - running the action is the point
    return module


def run_action(result_fd: int, entry: str, code: CodeType | None = None) -> int:
    """Read the stdin document, run the entry point, report on `result_fd`; the exit code.
    `code`: the entry's `compile_run_module` when the fork server has it already.

    SystemExit raised by a script propagates, as it would from the interpreter's top level.
    """
    entry = os.path.abspath(entry)
    os.set_inheritable(result_fd, False)  # processes the action starts do not hold it open
    # Each printed line leaves at once, as on a terminal: the worker shows it live
    # (api.md "execution.output") instead of when 8 KiB have piled up or the action ends.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    raw = sys.stdin.buffer.read()
    document = json.loads(raw) if raw.strip() else {}
    parameters = document.get("parameters") or {}

    for path in (os.getcwd(), os.path.dirname(entry), SDK_DIR):
        if path not in sys.path:
            sys.path.insert(0, path)
    import attune

    attune._configure(document)
    sys.argv = [entry]

    try:
        if code is None:
            with open(entry, "rb") as handle:
                code = compile_run_module(entry, handle.read())
        if code is None:
            import runpy

            runpy.run_path(entry, run_name="__main__")
            return 0
        module = _load_module(entry, code)
        run = getattr(module, "run", None)
        if not callable(run):
            raise TypeError(f"'run' in {entry} is not callable")
        output = run(**parameters)
        if hasattr(output, "__await__"):
            import asyncio

            async def _await() -> object:
                return await output

            output = asyncio.run(_await())
        sys.stdout.flush()
        _write_result(result_fd, {"output": output})
        return 0
    except SystemExit:
        raise
    except BaseException as exc:
        sys.stdout.flush()
        _print_traceback(exc)
        sys.stderr.flush()
        _write_result(result_fd, {"error": {"type": type(exc).__name__, "message": str(exc)}})
        return 1


if __name__ == "__main__":
    sys.exit(run_action(int(sys.argv[1]), sys.argv[2]))
