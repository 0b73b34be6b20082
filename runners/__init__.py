"""Runner registry: runner_type name → runner class, imported lazily.

A new runner is one module plus one entry in RUNNERS. `workflow` and `inquiry` are handled by the
executor, not by a worker process; they are listed so definitions using them validate.
"""

from __future__ import annotations

import importlib
from typing import Any

# canonical name → "module:Class" (None: handled by the executor, never by a worker)
RUNNERS: dict[str, str | None] = {
    "python": "runners.python:PythonRunner",
    "node": "runners.node:NodeRunner",
    "shell": "runners.shell:ShellRunner",
    "http": "runners.http:HttpRunner",
    "container": "runners.container:ContainerRunner",
    "workflow": None,
    "inquiry": None,
}
ALIASES: dict[str, str] = {"python3": "python", "nodejs": "node", "local-shell-script": "shell"}


class UnknownRunnerError(ValueError):
    """The runner_type names no registered runner; the message lists the known ones."""


def canonical_runner_type(name: str) -> str:
    """Resolve aliases; raise UnknownRunnerError listing the known names."""
    canonical = ALIASES.get(name, name)
    if canonical not in RUNNERS:
        known = ", ".join(sorted([*RUNNERS, *ALIASES]))
        raise UnknownRunnerError(f"Unknown runner_type {name!r}; known: {known}")
    return canonical


def get_runner(name: str) -> Any:
    """The runner class for a runner_type (worker side only)."""
    canonical = canonical_runner_type(name)
    target = RUNNERS[canonical]
    if target is None:
        raise UnknownRunnerError(f"runner_type {name!r} is run by the executor, not a worker")
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
