"""The supervisor's rules: the replica plan, restart decisions, backoff and what /health says."""

import os
import signal

import pytest

from nameko_services.domain import supervision
from nameko_services.domain.errors import ConfigurationError


def test_replica_names_keep_the_first_ones_plain():
    assert [supervision.replica_name("worker", n) for n in (1, 2, 3)] == [
        "worker", "worker-2", "worker-3"]
    assert supervision.role_of("worker-3") == ("worker", 3)
    assert supervision.role_of("gateway") == ("gateway", 1)


def test_the_replicas_flag_is_parsed_and_checked():
    assert supervision.parse_replicas("worker=3, executor=2,gateway=2") == {
        "worker": 3, "executor": 2, "gateway": 2}
    assert supervision.parse_replicas("") == {}
    for bad, named in (("worker", "ROLE=COUNT"), ("web=2", "'web=2'"),
                       ("worker=0", "--replicas worker"), ("worker=x", "--replicas worker"),
                       ("worker=2,worker=3", "worker given twice")):
        with pytest.raises(ConfigurationError, match=named):
            supervision.parse_replicas(bad)


@pytest.mark.parametrize(("code", "failed", "said"), [
    (0, False, "exit 0"),
    (1, True, "exit 1"),
    (-signal.SIGKILL, True, "killed by SIGKILL"),
    (-signal.SIGSEGV, True, "killed by SIGSEGV"),
    (-signal.SIGTERM, False, "killed by SIGTERM"),
    (-signal.SIGINT, False, "killed by SIGINT"),
    (None, True, "exit unknown"),
])
def test_a_failure_is_restarted_a_requested_stop_is_not(code, failed, said):
    assert supervision.failed(code) is failed
    assert supervision.describe_exit(code) == said


def test_backoff_doubles_up_to_its_cap():
    assert [supervision.backoff_seconds(n, base=0.5, maximum=5) for n in range(1, 7)] == [
        0.5, 1, 2, 4, 5, 5]


def test_the_state_file_is_replaced_whole_and_read_back(tmp_path):
    assert supervision.read_state(tmp_path) is None
    supervision.write_state(tmp_path, {"pid": 1, "processes": []})
    assert supervision.read_state(tmp_path) == {"pid": 1, "processes": []}
    assert oct(supervision.state_path(tmp_path).stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == [supervision.STATE_FILE]


def process(name, state="running", restarts=0, last_exit=None):
    return {"name": name, "state": state, "restarts": restarts, "last_exit": last_exit}


def test_health_is_ok_while_every_replica_runs_and_shows_the_restarts():
    state = {"pid": os.getpid(), "restart": True, "processes": [
        process("worker"), process("worker-2", restarts=3, last_exit="killed by SIGKILL")]}
    check, section = supervision.health_summary(state)
    assert check == "ok"
    assert section["restarts"] == 3
    assert section["processes"]["worker-2"] == {"state": "running", "restarts": 3,
                                                "last_exit": "killed by SIGKILL"}


def test_health_names_a_replica_that_does_not_run_and_a_dead_supervisor():
    state = {"pid": os.getpid(), "processes": [
        process("worker"), process("sensor-2", "backoff", 1, "exit 1")]}
    check, _ = supervision.health_summary(state)
    assert check == "error: not running: sensor-2 backoff after exit 1"
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    check, _ = supervision.health_summary({**state, "pid": gone})
    assert check == f"error: the supervisor (pid {gone}) is not running"
