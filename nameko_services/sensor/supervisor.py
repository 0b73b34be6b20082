"""Runs each pack sensor in its own child process and restarts a crashed one with backoff.

`PackSensors()` is the service's dependency: `sync()` (at start-up, after a pack change and
periodically) starts new sensors, restarts changed ones and stops removed ones. A sensor runs
only where this process holds its advisory lock (domain/locks.py), so replicas never run one
sensor twice; a replica without the lock tries again at its next sync (every few seconds:
service.py `claim`), so a sensor whose replica died moves to another at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import select

from runners import environments, sandbox
from runners.environments import EnvironmentBuildError, PackEnvironment, find_python
from runners.sandbox import SandboxedProcess

from ..domain import locks, pack_store, sandboxing
from ..domain.db import make_engine
from ..domain.settings import Settings
from ..domain.supervision import backoff_seconds
from ..green import Publisher
from . import custom

log = logging.getLogger(__name__)

WRAPPER = Path(__file__).resolve().parents[2] / "runners" / "wrappers" / "sensor_wrapper.py"
STOP_GRACE_SECONDS = 3.0
STABLE_SECONDS = 60.0  # a child that ran this long starts its backoff afresh when it crashes
STDERR_LINES = 20


class SensorRunner:
    """One sensor's child process and the loop that restarts it."""

    def __init__(self, spec: custom.SensorSpec, supervisor: PackSensors) -> None:
        self.spec = spec
        self._supervisor = supervisor
        self._stopped = threading.Event()
        self._proc: SandboxedProcess | None = None
        self._thread: Any = None

    def start(self) -> None:
        self._thread = self._supervisor.container.spawn_managed_thread(self._loop)

    def stop(self) -> None:
        self._stopped.set()
        self._terminate()
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._thread.wait()

    def _loop(self) -> None:
        engine = self._supervisor.engine
        failures = 0
        restarted = False
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                error = self._run_once(restarted)
            except Exception as exc:  # a broken spawn is a crash like any other
                log.exception("sensor %s could not run", self.spec.ref)
                error = f"{type(exc).__name__}: {exc}"
            if self._stopped.is_set():
                break
            failures = 1 if time.monotonic() - started >= STABLE_SECONDS else failures + 1
            delay = backoff_seconds(failures)
            log.warning("sensor %s stopped (%s); restart %s in %.1f s", self.spec.ref,
                        error.splitlines()[-1] if error else "?", failures, delay)
            with contextlib.suppress(Exception):
                custom.record_state(engine, self.spec.sensor_id, custom.RESTARTING, error=error)
            self._stopped.wait(delay)
            restarted = True
        with contextlib.suppress(Exception):
            custom.record_state(engine, self.spec.sensor_id, custom.STOPPED)

    def _environment(self) -> PackEnvironment | None:
        """The pack's virtualenv when it has a requirements.txt (built now if this host has
        none yet, as for its actions), else None (the base python)."""
        source = self.spec.source
        if source is None or environments.PYTHON not in source.kinds():
            return None
        envs = sandboxing.pack_environments(self._supervisor.settings)
        return envs.ensure(source, [environments.PYTHON])

    def _run_once(self, restarted: bool) -> str:
        """Start the child in its sandbox, store what it emits until it exits; returns why it
        exited."""
        try:
            env = self._environment()
        except EnvironmentBuildError as exc:
            # the installer's tail: the sensor's last_error keeps 4,000 characters
            return f"the pack's python environment failed to build: {exc.message[-3000:]}"
        if self._stopped.is_set():  # stopped while the environment was being built
            return "stopped before it started"
        python = (env.interpreter(environments.PYTHON) if env else None) or find_python()
        box = sandboxing.for_sensor(self._supervisor.settings, self.spec.pack,
                                    self.spec.pack_dir, env, python)
        proc = sandbox.spawn(box, [python, "-I", "-B", str(WRAPPER)], box.environment(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self._proc = proc
        if self._stopped.is_set():  # stop() ran while the process was being spawned
            self._terminate()
            return "stopped while starting"
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(self.spec.wrapper_input()).encode())
        proc.stdin.close()
        custom.record_state(self._supervisor.engine, self.spec.sensor_id, custom.RUNNING,
                            restarted=restarted, clear_error=not restarted)
        log.info("sensor %s started (pid %s)", self.spec.ref, proc.pid)
        tail: deque[str] = deque(maxlen=STDERR_LINES)
        reader = threading.Thread(target=self._read_stderr, args=(proc, tail), daemon=True)
        reader.start()
        for line in proc.stdout:
            self._on_line(line)
        code = proc.wait()
        reader.join(timeout=2)
        return "\n".join(tail) or f"sensor process exited with code {code}"

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            payload = message["emit"]
        except (ValueError, KeyError, TypeError):
            log.warning("sensor %s wrote a malformed line; ignored", self.spec.ref)
            return
        try:
            custom.emit_and_announce(self._supervisor.engine, self._supervisor.publish,
                                     self.spec, payload)
        except Exception:
            log.exception("sensor %s: storing an emitted event failed", self.spec.ref)

    def _read_stderr(self, proc: SandboxedProcess, tail: deque[str]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            text = raw.decode(errors="replace").rstrip()
            tail.append(text)
            log.debug("sensor %s: %s", self.spec.ref, text)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.signal_group(signal.SIGKILL)
            proc.wait()


class PackSensors(DependencyProvider):
    """The sensors this process runs; handlers call `sync()` when definitions may have changed."""

    def setup(self) -> None:
        settings = Settings.from_mapping(self.container.config)
        self.settings = settings
        self.engine = make_engine(settings.database_url, pool_size=2)
        self._publisher = Publisher(self.container.config)
        self._lock_conn: Any = None
        self._runners: dict[int, SensorRunner] = {}
        self._guard = threading.Lock()

    def publish(self, source: str, event_type: str, payload: dict[str, Any]) -> None:
        self._publisher(source, event_type, payload)

    def get_dependency(self, worker_ctx: Any) -> PackSensors:
        return self

    def sync(self) -> None:
        """Make the running set match the enabled sensors this process holds the lock of."""
        with self._guard:
            if self._lock_conn is not None and not self._locks_held():
                log.warning("lost the sensor lock connection; stopping sensors to re-lock them")
                for sensor_id in list(self._runners):
                    self._runners.pop(sensor_id).stop()
                self._lock_conn = None
            with self.engine.connect() as conn:
                wanted = {spec.sensor_id: spec for spec in
                          custom.load_all(conn, pack_store.cache_root(self.settings))}
            for sensor_id in list(self._runners):
                runner = self._runners[sensor_id]
                spec = wanted.get(sensor_id)
                if spec is None or spec.fingerprint != runner.spec.fingerprint:
                    self._stop(sensor_id)
            for sensor_id, spec in wanted.items():
                if sensor_id not in self._runners and self._lock(sensor_id):
                    runner = SensorRunner(spec, self)
                    self._runners[sensor_id] = runner
                    runner.start()

    def running(self) -> list[str]:
        return sorted(r.spec.ref for r in self._runners.values())

    def _locks_held(self) -> bool:
        """Is the session holding our advisory locks still alive? (A lost one lost its locks.)"""
        try:
            self._lock_conn.execute(select(1))
        except Exception:
            with contextlib.suppress(Exception):
                self._lock_conn.invalidate()
                self._lock_conn.close()
            return False
        return True

    def _lock(self, sensor_id: int) -> bool:
        if self._lock_conn is None:
            self._lock_conn = self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        return locks.try_lock(self._lock_conn, locks.SENSOR, sensor_id)

    def _stop(self, sensor_id: int) -> None:
        runner = self._runners.pop(sensor_id)
        runner.stop()
        with contextlib.suppress(Exception):
            locks.unlock(self._lock_conn, locks.SENSOR, sensor_id)

    def stop(self) -> None:
        with self._guard:
            for sensor_id in list(self._runners):
                self._stop(sensor_id)
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                self._lock_conn.close()
        self.engine.dispose()

    def kill(self) -> None:
        for runner in list(self._runners.values()):
            runner._stopped.set()
            runner._terminate()
        self.engine.dispose()
