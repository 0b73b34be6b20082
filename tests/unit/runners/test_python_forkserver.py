"""Warm python actions: forked from a server per sandbox and interpreter, with real processes.

Actions run in their sandbox: their pids are their namespace's and the pack folder is
read-only, so they are found from here by a marker in a child's command line (`sleep
<marker>`), released by a signal, and report what they see of their server themselves."""

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from runners import forkserver
from runners.base import Outcome
from runners.environments import find_python
from runners.process import sandbox_of
from runners.python import PythonRunner
from tests.support.factories import wait_until
from tests.unit.runners.processes import marker_seconds, processes_with, zombie_children

WHO = """
    import os
    def run():
        def read(name):
            with open(f"/proc/{os.getppid()}/{name}", "rb") as handle:
                return [item.decode() for item in handle.read().split(b"\\0") if item]
        return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "cwd": os.getcwd(), "execution": os.environ.get("ATTUNE_EXECUTION_ID"),
                "home": os.environ["HOME"],
                "parent": read("cmdline"),
                "parent_env": sorted(item.split("=", 1)[0] for item in read("environ"))}
"""


def warm(output: dict) -> bool:
    """Was the run forked by a fork server rather than started cold? A forked run has a work
    folder of its own under the sandbox's home, a cold one the home itself."""
    return output["home"].startswith("/home/attune/run-")


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def server_for(make_request, entry):
    """The fork server the runner would use for `entry` (started if needed)."""
    sandbox = sandbox_of(make_request(entry), find_python())
    return forkserver.SERVERS.get(sandbox, find_python(), sandbox.environment())


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
    assert first["ppid"] == second["ppid"]
    assert warm(first) and warm(second) and first["home"] != second["home"]
    assert any(str(forkserver.SERVER) in arg for arg in first["parent"])
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


def test_the_entry_module_starts_afresh_in_every_run(write, make_request):
    entry = write("actions/own.py", """
        calls = []
        def run():
            calls.append(1)
            run.__code__ = (lambda: "tampered").__code__
            return len(calls)
    """)
    assert [run(make_request(entry)).output for _ in range(3)] == [1, 1, 1]


def test_a_run_collects_its_own_garbage_but_never_walks_the_servers_objects(
    write, make_request
):
    entry = write("actions/collect.py", """
        import gc, weakref
        class Node:
            pass
        def run():
            node = Node()
            node.cycle = node
            ref = weakref.ref(node)
            del node
            gc.collect()
            return {"collected": ref() is None, "enabled": gc.isenabled(),
                    "inherited_frozen": gc.get_freeze_count() > 0}
    """)
    assert run(make_request(entry)).output == {
        "collected": True, "enabled": True, "inherited_frozen": True}


COMPILED = r"""
import json, pathlib, runpy, sys
server = runpy.run_path(sys.argv[1], run_name="under_test")  # main() does not run
folder, cache = pathlib.Path(sys.argv[2]), {}
def compiled(entry, **more):
    return server["_compiled"]({"cwd": str(folder), "entry": entry, **more}, cache)
def result(code):
    namespace = {}
    exec(code, namespace)
    return namespace["run"]()
(folder / "a.py").write_text("def run():\n    return 1\n")
first, again = compiled("a.py"), compiled(str(folder / "a.py"))
(folder / "a.py").write_text("def run():\n    return 2\n")  # same size, same second
edited = compiled("a.py")
(folder / "script.py").write_text("print(1)\n")
(folder / "bad.py").write_text("def run(:\n")
(folder / "warns.py").write_text("def run():\n    return 1 is 1\n")
others = [compiled(name) for name in ("script.py", "bad.py", "warns.py", "missing.py")]
print(json.dumps({
    "reused": first is again, "first": result(first), "edited": result(edited),
    "filename": edited.co_filename, "others": others,
    "argv": compiled("a.py", argv=["/bin/true"]), "kept": len(cache),
}))
"""


def test_the_server_compiles_an_entry_once_per_source(tmp_path):
    """The server hands each child its entry compiled, compiled again when the file changed;
    scripts, syntax errors and warnings, and unreadable files are left to the child."""
    found = subprocess.run(
        [find_python(), "-I", "-B", "-c", COMPILED, str(forkserver.SERVER), str(tmp_path)],
        capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == {
        "reused": True, "first": 1, "edited": 2, "filename": str(tmp_path / "a.py"),
        "others": [None, None, None, None], "argv": None, "kept": 3}
    assert found.stderr == ""


def test_an_entry_that_is_a_fifo_blocks_its_run_only(write, make_request, pack_dir):
    fifo = pack_dir / "actions" / "fifo.py"
    os.mkfifo(fifo, 0o644)
    stuck = run(make_request(fifo, timeout_s=1, kill_grace_s=0))
    assert stuck.error["type"] == "timeout"
    entry = write("actions/ok.py", "def run():\n    return 1\n")
    assert run(make_request(entry)).output == 1


def test_a_syntax_warning_is_the_runs_to_print(write, make_request):
    entry = write("actions/warns.py", "def run():\n    return 1 is 1\n")
    for _ in range(2):
        result = run(make_request(entry))
        assert result.output is True
        assert "SyntaxWarning" in result.stderr


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


def test_timeout_and_cancel_reach_the_forked_group(write, make_request):
    marker = marker_seconds()
    entry = write("actions/hang.py", f"""
        import subprocess, time
        def run():
            subprocess.Popen(["sleep", "{marker}"])
            print("started", flush=True)
            time.sleep(300)
    """)
    result = run(make_request(entry, timeout_s=2, kill_grace_s=0.2))
    assert result.error["type"] == "timeout" and result.stdout == "started\n"
    wait_until(lambda: not processes_with(marker))

    runner = PythonRunner()
    results = []
    thread = threading.Thread(target=lambda: results.append(runner.run(make_request(entry))))
    thread.start()
    wait_until(lambda: processes_with(marker))
    runner.cancel()
    thread.join()
    assert results[0].outcome is Outcome.CANCELED and results[0].stdout == "started\n"
    wait_until(lambda: not processes_with(marker))
    wait_until(lambda: zombie_children() == [])  # reaped, if only by a background reaper


def test_a_killed_server_fails_its_runs_and_the_next_run_gets_a_new_one(write, make_request):
    who = write("actions/who.py", WHO)
    assert warm(run(make_request(who)).output)
    marker = marker_seconds()
    entry = write("actions/wait.py", f"""
        import subprocess, time
        def run():
            subprocess.Popen(["sleep", "{marker}"])
            time.sleep(300)
    """)
    results = []
    thread = threading.Thread(target=lambda: results.append(run(make_request(entry))))
    thread.start()
    (sleeper,) = wait_until(lambda: processes_with(marker))
    action = parent_of(sleeper)
    server = parent_of(action)
    assert str(forkserver.SERVER) in cmdline(server)
    os.kill(server, signal.SIGKILL)
    thread.join(timeout=20)
    assert results and results[0].outcome is Outcome.FAILED
    assert results[0].exit_code == -signal.SIGKILL
    wait_until(lambda: not processes_with(marker))
    again = run(make_request(who))
    assert again.outcome is Outcome.SUCCEEDED and warm(again.output)


def test_without_a_working_server_actions_run_cold(write, make_request, monkeypatch, pack_dir):
    broken = write("broken_server.py", "raise SystemExit(1)\n")
    monkeypatch.setattr(forkserver, "SERVER", broken)
    entry = write("actions/who.py", WHO)
    for _ in range(2):  # the second run does not try the broken server again
        result = run(make_request(entry))
        assert result.outcome is Outcome.SUCCEEDED
        assert not warm(result.output)
        assert result.output["execution"] == "42"


def test_the_server_environment_holds_nothing_of_a_run(write, make_request):
    entry = write("actions/who.py", WHO)
    output = run(make_request(entry, secrets={"api_key": "s3cr3t-value"})).output
    assert warm(output)
    assert set(output["parent_env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}


def test_a_server_that_does_not_answer_fails_the_run_without_running_it_cold(
    write, make_request, monkeypatch
):
    """It might still fork the request later: running it cold as well could run it twice."""
    silent = write("silent_server.py", "import time\ntime.sleep(5)\n")
    monkeypatch.setattr(forkserver, "SERVER", silent)
    monkeypatch.setattr(forkserver, "LAUNCH_TIMEOUT_SECONDS", 0.5)
    entry = write("actions/mark.py", "def run():\n    return 'ran'\n")
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED and result.output is None
    assert result.error["type"] == "runner_unavailable"
    assert "did not answer within 0.5 s" in result.error["message"]
    assert not forkserver.SERVERS._servers  # the next run gets a new one


def test_a_request_given_up_on_before_the_server_reads_it_is_never_started(
    write, make_request, pack_dir
):
    entry = write("actions/say.py", "print('ran')\n")
    server = server_for(make_request, entry)
    reply, theirs = socket.socketpair()
    reply.close()  # the worker stopped waiting before the server got to the request
    (stdin_r, stdin_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (
        os.pipe() for _ in range(4))
    request = {"cwd": str(pack_dir), "env": {"PATH": "/usr/bin:/bin"}, "entry": str(entry)}
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
    write, make_request, monkeypatch
):
    # A server whose second fork fails (EAGAIN), as under a process limit.
    flaky = write("flaky_fork_server.py",
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
    marker = marker_seconds()
    slow = write("actions/slow.py", f"""
        import os, signal, subprocess
        def run():
            signal.signal(signal.SIGUSR1, lambda *_: None)
            subprocess.Popen(["sleep", "{marker}"])
            signal.pause()
            return {{"home": os.environ["HOME"]}}
    """)
    results = []
    thread = threading.Thread(target=lambda: results.append(run(make_request(slow))))
    thread.start()
    (sleeper,) = wait_until(lambda: processes_with(marker))
    second = run(make_request(write("actions/who.py", WHO)))
    assert second.outcome is Outcome.SUCCEEDED and not warm(second.output)
    os.kill(parent_of(sleeper), signal.SIGUSR1)
    thread.join(timeout=20)
    assert results[0].outcome is Outcome.SUCCEEDED, results[0]
    assert warm(results[0].output)  # it ran forked, and its server survived


def test_a_signal_request_split_across_reads_is_one_signal(write, make_request, pack_dir):
    """`kill 15` arriving as `kill 1` + `5` must not become a SIGHUP."""
    marker = marker_seconds()
    entry = write("actions/trap.py", f"""
        import signal, subprocess, sys, time
        def on(sig, _):
            print(signal.Signals(sig).name, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGHUP, on)
        signal.signal(signal.SIGTERM, on)
        subprocess.Popen(["sleep", "{marker}"])
        time.sleep(60)
    """)
    server = server_for(make_request, entry)
    (stdin_r, stdin_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (
        os.pipe() for _ in range(4))
    ended = threading.Event()
    child = server.launch(str(pack_dir), {"PATH": "/usr/bin:/bin"}, str(entry),
                          (stdin_r, out_w, err_w, res_w), ended.set, {})
    for fd in (stdin_r, stdin_w, out_w, err_w, res_w):
        os.close(fd)
    wait_until(lambda: processes_with(marker))
    child._reply.sendall(b"kill 1")
    time.sleep(0.2)  # the server reads the first part on its own
    child._reply.sendall(b"5\n")
    assert child.finish() == 0 and ended.is_set()
    assert os.read(out_r, 100) == b"SIGTERM\n"
    for fd in (out_r, err_r, res_r):
        os.close(fd)
