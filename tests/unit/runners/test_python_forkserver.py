"""Warm python actions: forked from a per-interpreter server, with real processes."""

import json
import os
import select
import signal
import socket
import sys
import threading
import time

import pytest

from runners import forkserver
from runners.base import Outcome
from runners.python import PythonRunner
from tests.support.factories import wait_until
from tests.unit.runners.processes import process_alive, zombie_children

WHO = """
    import os
    def run():
        return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "cwd": os.getcwd(), "execution": os.environ.get("ATTUNE_EXECUTION_ID")}
"""


@pytest.fixture(autouse=True)
def fresh_servers():
    """Each test starts without servers and leaves none behind."""
    forkserver.SERVERS.close()
    yield
    forkserver.SERVERS.close()


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().decode().split("\0")


def run(request):
    return PythonRunner().run(request)


def test_runs_are_forked_by_one_server_per_interpreter(write, make_request, pack_dir):
    entry = write("actions/who.py", WHO)
    first = run(make_request(entry, execution_id=1)).output
    second = run(make_request(entry, execution_id=2)).output
    assert first["ppid"] == second["ppid"] != os.getpid()
    assert str(forkserver.SERVER) in cmdline(first["ppid"])
    assert first["pid"] != second["pid"]
    # Each run is its own session in the pack folder with its own environment.
    assert first["pgid"] == first["pid"]
    assert first["cwd"] == str(pack_dir)
    assert (first["execution"], second["execution"]) == ("1", "2")


def test_module_state_does_not_leak_between_runs(write, make_request):
    write("actions/counter.py", "calls = []\n")
    entry = write("actions/count.py", """
        import counter
        def run():
            counter.calls.append(1)
            return len(counter.calls)
    """)
    assert [run(make_request(entry)).output for _ in range(3)] == [1, 1, 1]


def test_a_changed_file_runs_its_new_code(write, make_request):
    entry = write("actions/v.py", "def run():\n    return 1\n")
    assert run(make_request(entry)).output == 1
    write("actions/v.py", "def run():\n    return 2\n")
    assert run(make_request(entry)).output == 2


def test_script_exit_codes_threads_and_atexit_behave_as_in_a_fresh_interpreter(
    write, make_request
):
    entry = write("actions/script.py", """
        import atexit, sys, threading, time
        atexit.register(lambda: print("atexit ran", flush=True))
        def late():
            time.sleep(0.2)
            print("thread finished", flush=True)
        threading.Thread(target=late).start()
        sys.exit(3)
    """)
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED and result.exit_code == 3
    assert result.stdout == "thread finished\natexit ran\n"
    message = write("actions/message.py", 'import sys\nsys.exit("bad input")\n')
    result = run(make_request(message))
    assert result.exit_code == 1 and result.stderr == "bad input\n"


def test_timeout_and_cancel_reach_the_forked_group(write, make_request, pack_dir):
    grandchild = pack_dir / "grandchild.pid"
    entry = write("actions/hang.py", f"""
        import os, subprocess, time
        def run():
            child = subprocess.Popen(["sleep", "300"])
            print("started", flush=True)
            with open("grandchild.tmp", "w") as handle:
                handle.write(str(child.pid))
            os.rename("grandchild.tmp", {str(grandchild)!r})
            time.sleep(300)
    """)
    result = run(make_request(entry, timeout_s=2, kill_grace_s=0.2))
    assert result.error["type"] == "timeout" and result.stdout == "started\n"
    wait_until(lambda: not process_alive(int(grandchild.read_text())))

    grandchild.unlink()
    runner = PythonRunner()
    results = []
    thread = threading.Thread(target=lambda: results.append(runner.run(make_request(entry))))
    thread.start()
    wait_until(grandchild.exists)
    runner.cancel()
    thread.join()
    assert results[0].outcome is Outcome.CANCELED and results[0].stdout == "started\n"
    wait_until(lambda: not process_alive(int(grandchild.read_text())))
    wait_until(lambda: zombie_children() == [])  # reaped, if only by a background reaper


def test_a_killed_server_fails_its_runs_and_the_next_run_gets_a_new_one(
    write, make_request, pack_dir
):
    who = write("actions/who.py", WHO)
    server = run(make_request(who)).output["ppid"]
    marker = pack_dir / "pid"
    entry = write("actions/wait.py", f"""
        import os, time
        def run():
            open({str(marker)!r}, "w").write(str(os.getpid()))
            time.sleep(300)
    """)
    results = []
    thread = threading.Thread(target=lambda: results.append(run(make_request(entry))))
    thread.start()
    action = int(wait_until(lambda: marker.exists() and marker.read_text()))
    os.kill(server, signal.SIGKILL)
    thread.join(timeout=20)
    assert results and results[0].outcome is Outcome.FAILED
    assert results[0].exit_code == -signal.SIGKILL
    wait_until(lambda: not process_alive(action))
    assert run(make_request(who)).output["ppid"] not in (server, os.getpid())


def test_without_a_working_server_actions_run_cold(write, make_request, monkeypatch, tmp_path):
    broken = tmp_path / "broken_server.py"
    broken.write_text("raise SystemExit(1)\n")
    monkeypatch.setattr(forkserver, "SERVER", broken)
    entry = write("actions/who.py", WHO)
    for _ in range(2):  # the second run does not try the broken server again
        result = run(make_request(entry))
        assert result.outcome is Outcome.SUCCEEDED
        assert result.output["ppid"] == os.getpid()
        assert result.output["execution"] == "42"


def test_the_server_environment_holds_nothing_of_a_run(write, make_request):
    entry = write("actions/who.py", WHO)
    output = run(make_request(entry, secrets={"api_key": "s3cr3t-value"})).output
    with open(f"/proc/{output['ppid']}/environ", "rb") as handle:
        names = {item.split(b"=", 1)[0] for item in handle.read().split(b"\0") if item}
    assert names <= {b"PATH", b"HOME", b"LANG"}


def test_a_server_that_does_not_answer_fails_the_run_without_running_it_cold(
    write, make_request, monkeypatch, tmp_path, pack_dir
):
    """It might still fork the request later: running it cold as well could run it twice."""
    silent = tmp_path / "silent_server.py"
    silent.write_text("import time\ntime.sleep(5)\n")
    monkeypatch.setattr(forkserver, "SERVER", silent)
    monkeypatch.setattr(forkserver, "LAUNCH_TIMEOUT_SECONDS", 0.5)
    marker = pack_dir / "ran"
    entry = write("actions/mark.py", f"open({str(marker)!r}, 'w').write('x')\n")
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "runner_unavailable"
    assert "did not answer within 0.5 s" in result.error["message"]
    assert not marker.exists()
    assert sys.executable not in forkserver.SERVERS._servers  # the next run gets a new one


def test_a_request_given_up_on_before_the_server_reads_it_is_never_started(write, pack_dir):
    entry = write("actions/say.py", "print('ran')\n")
    server = forkserver.SERVERS.get(sys.executable, {"PATH": os.environ["PATH"]})
    reply, theirs = socket.socketpair()
    reply.close()  # the worker stopped waiting before the server got to the request
    (stdin_r, stdin_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (
        os.pipe() for _ in range(4))
    request = {"cwd": str(pack_dir), "env": {"PATH": os.environ["PATH"]}, "entry": str(entry)}
    server._send(json.dumps(request).encode(), [theirs.fileno(), stdin_r, out_w, err_w, res_w])
    theirs.close()
    for fd in (stdin_r, stdin_w, out_w, err_w, res_w):
        os.close(fd)
    # A started child would hold stdout open and print; a dropped request closes it at once.
    assert select.select([out_r], [], [], 10)[0] == [out_r]
    assert os.read(out_r, 100) == b""
    for fd in (out_r, err_r, res_r):
        os.close(fd)


def test_a_fork_that_fails_runs_that_action_cold_and_spares_the_servers_other_runs(
    write, make_request, monkeypatch, tmp_path, pack_dir
):
    # A server whose second fork fails (EAGAIN), as under a process limit.
    flaky = tmp_path / "flaky_fork_server.py"
    flaky.write_text(
        "import errno, os, runpy\n"
        "real_fork, calls = os.fork, []\n"
        "def fork():\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        raise OSError(errno.EAGAIN, 'Resource temporarily unavailable')\n"
        "    return real_fork()\n"
        "os.fork = fork\n"
        f"runpy.run_path({str(forkserver.SERVER)!r}, run_name='__main__')\n"
    )
    monkeypatch.setattr(forkserver, "SERVER", flaky)
    started = pack_dir / "started"
    release = pack_dir / "release"
    slow = write("actions/slow.py", f"""
        import os, time
        def run():
            open({str(started)!r}, "w").close()
            while not os.path.exists({str(release)!r}):
                time.sleep(0.01)
            return os.getppid()
    """)
    results = []
    thread = threading.Thread(target=lambda: results.append(run(make_request(slow))))
    thread.start()
    wait_until(started.exists)
    second = run(make_request(write("actions/who.py", WHO)))
    assert second.outcome is Outcome.SUCCEEDED and second.output["ppid"] == os.getpid()
    release.touch()
    thread.join(timeout=20)
    assert results[0].outcome is Outcome.SUCCEEDED, results[0]
    assert results[0].output != os.getpid()  # it ran forked, and its server survived


def test_a_signal_request_split_across_reads_is_one_signal(write, make_request, pack_dir):
    """`kill 15` arriving as `kill 1` + `5` must not become a SIGHUP."""
    ready = pack_dir / "ready"
    entry = write("actions/trap.py", f"""
        import signal, sys, time
        def on(sig, _):
            print(signal.Signals(sig).name, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGHUP, on)
        signal.signal(signal.SIGTERM, on)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    server = forkserver.SERVERS.get(sys.executable, {"PATH": os.environ["PATH"]})
    (stdin_r, stdin_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (
        os.pipe() for _ in range(4))
    ended = threading.Event()
    child = server.launch(str(pack_dir), {"PATH": os.environ["PATH"]}, str(entry),
                          (stdin_r, out_w, err_w, res_w), ended.set)
    for fd in (stdin_r, stdin_w, out_w, err_w, res_w):
        os.close(fd)
    wait_until(ready.exists)
    child._reply.sendall(b"kill 1")
    time.sleep(0.2)  # the server reads the first part on its own
    child._reply.sendall(b"5\n")
    assert child.finish() == 0 and ended.is_set()
    assert os.read(out_r, 100) == b"SIGTERM\n"
    for fd in (out_r, err_r, res_r):
        os.close(fd)
