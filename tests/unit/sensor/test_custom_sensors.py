"""Custom sensors without a platform: the wrapper process, backoff and loop protection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nameko_services.domain.supervision import backoff_seconds
from nameko_services.executor.enforcement import chain_error
from nameko_services.sensor.custom import SensorSpec
from nameko_services.sensor.supervisor import WRAPPER, SensorRunner

SENSOR = '''
class Counter:
    def __init__(self, config):
        self.n = config["start"]

    def poll(self):
        print("noise on stdout must not reach the event stream")
        self.n += 1
        if self.n > 3:
            raise RuntimeError("done counting")
        return [{"n": self.n}]
'''

RUNNER = '''
class Once:
    def run(self, emit):
        emit({"hello": self.config["who"]})
'''


def run_wrapper(tmp_path: Path, code: str, config: dict) -> subprocess.CompletedProcess:
    (tmp_path / "sensor.py").write_text(code)
    spec = {"ref": "p.s", "entry_point": str(tmp_path / "sensor.py"), "pack_dir": str(tmp_path),
            "config": config, "poll_interval": 0.01}
    return subprocess.run([sys.executable, "-I", str(WRAPPER)], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=30, check=False)


def test_a_polling_sensor_emits_one_json_line_per_payload_and_a_crash_exits_non_zero(tmp_path):
    done = run_wrapper(tmp_path, SENSOR, {"start": 0})
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [{"emit": {"n": 1}}, {"emit": {"n": 2}}, {"emit": {"n": 3}}]
    assert done.returncode == 1
    assert "RuntimeError: done counting" in done.stderr
    assert "noise on stdout" in done.stderr


def test_a_run_loop_sensor_gets_an_emit_callable_and_its_config(tmp_path):
    done = run_wrapper(tmp_path, RUNNER, {"who": "world"})
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"emit": {"hello": "world"}}]


def test_restart_backoff_doubles_up_to_a_minute():
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_seconds(30) == 60


def test_an_event_deeper_than_the_limit_is_refused_with_a_clear_error():
    assert chain_error({"chain_depth": 10, "caused_by_execution_id": 7}, 10) is None
    error = chain_error({"chain_depth": 11, "caused_by_execution_id": 7}, 10)
    assert error is not None
    assert "chain depth 11 exceeds the limit of 10" in error and "execution 7" in error


def test_a_sensor_stopped_while_its_environment_builds_starts_no_process(tmp_path):
    spec = SensorSpec(sensor_id=1, ref="p.s", tenant_id=None, pack_dir=str(tmp_path),
                      entry_point=str(tmp_path / "sensor.py"), poll_interval=1.0,
                      trigger_types=(), config={})
    runner = SensorRunner(spec, supervisor=None)  # type: ignore[arg-type]

    def building_when_stopped() -> None:
        runner._stopped.set()  # stop() arrives while pip is still installing
        return None

    runner._environment = building_when_stopped  # type: ignore[method-assign]
    assert runner._run_once(restarted=False) == "stopped before it started"
    assert runner._proc is None  # no orphan sensor process that nobody would stop
