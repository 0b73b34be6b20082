"""Runs one pack sensor in its own interpreter: `python -I sensor_wrapper.py < spec.json`.

The stdin document is `{"ref", "entry_point" (absolute), "pack_dir", "config", "poll_interval"}`.
The sensor class is the module's class with a `poll` or `run` method (packs.md "Sensors"); it is
built with its `config` (as `cls(config)`, or `cls()` with `self.config` set). Each emitted payload
is one JSON line `{"emit": payload}` on the original stdout; whatever the sensor prints goes to
stderr, so it cannot corrupt the stream. Exits 1 with the traceback on stderr when it crashes.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

SDK_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "sdk", "python")


class Emitter:
    """Writes emitted payloads, one JSON line each, flushed at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, payload: Any = None) -> None:
        self._stream.write(json.dumps({"emit": payload}, default=str) + "\n")
        self._stream.flush()


def load_sensor_class(entry_point: str, ref: str) -> type:
    """Import the file and return its sensor class (defined there, with poll or run)."""
    spec = importlib.util.spec_from_file_location(f"attune_sensor_{os.getpid()}", entry_point)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry_point}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__
        and (callable(getattr(obj, "poll", None)) or callable(getattr(obj, "run", None)))
    ]
    if not found:
        raise TypeError(f"sensor {ref}: {entry_point} defines no class with poll() or run(emit)")
    return found[0]


def build(cls: type, config: dict) -> Any:
    """`cls(config)` when the constructor takes an argument, else `cls()` plus `.config`."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    sensor = cls(config) if params else cls()
    if not hasattr(sensor, "config"):
        sensor.config = config
    return sensor


def serve(sensor: Any, emit: Emitter, poll_interval: float) -> None:
    """run(emit) when the sensor has it, else poll() on the schedule (no drift)."""
    if callable(getattr(sensor, "run", None)) and not callable(getattr(sensor, "poll", None)):
        sensor.run(emit)
        return
    due = time.monotonic()
    while True:
        for payload in sensor.poll() or []:
            emit(payload)
        due += poll_interval
        time.sleep(max(0.0, due - time.monotonic()))


def exit_with_parent(interval: float = 1.0) -> None:
    """A daemon thread that ends this process once the sensor service that started it is gone
    (killed outright, so it never stopped us): no orphaned sensors."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    exit_with_parent()
    spec = json.load(sys.stdin)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the sensor's own prints go to stderr
    sys.stdout = sys.stderr
    os.chdir(spec["pack_dir"])
    sys.path[:0] = [spec["pack_dir"], SDK_DIR]
    sensor = build(load_sensor_class(spec["entry_point"], spec["ref"]), spec.get("config") or {})
    serve(sensor, Emitter(out), float(spec.get("poll_interval") or 5.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
