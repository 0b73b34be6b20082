"""Timeouts, cancel, process groups and reaping, with real processes."""

import signal
import threading

import pytest

from runners import process
from runners.base import Outcome
from runners.python import PythonRunner
from runners.shell import ShellRunner
from tests.support.factories import wait_until
from tests.unit.runners.processes import process_alive, zombie_children


def read_pid(path):
    return int(path.read_text().strip()) if path.exists() and path.read_text().strip() else None


def test_timeout_kills_the_whole_group_including_a_grandchild(write, make_request, pack_dir):
    pidfile = pack_dir / "grandchild.pid"
    entry = write("actions/hang.sh", f"""
        #!/bin/bash
        sleep 300 &
        echo $! > {pidfile}
        echo started
        sleep 300
    """)
    result = ShellRunner().run(make_request(entry, runner_type="shell", timeout_s=0.5))
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "timeout", "message": "Action timed out after 0.5 s"}
    assert result.stdout == "started\n"
    grandchild = read_pid(pidfile)
    assert grandchild is not None
    wait_until(lambda: not process_alive(grandchild))
    assert zombie_children() == []


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(write, make_request):
    entry = write("actions/stubborn.py", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring", flush=True)
        time.sleep(300)
    """)
    result = PythonRunner().run(make_request(entry, timeout_s=0.5, kill_grace_s=0.2))
    assert result.error["type"] == "timeout"
    assert result.exit_code == -signal.SIGKILL
    assert result.stdout == "ignoring\n"


def test_background_processes_left_behind_are_killed_when_the_action_exits(
    write, make_request, pack_dir
):
    pidfile = pack_dir / "bg.pid"
    entry = write("actions/bg.sh", f"""
        #!/bin/bash
        sleep 300 &
        echo $! > {pidfile}
        echo '{{"left": "behind"}}'
    """)
    result = ShellRunner().run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"left": "behind"}
    wait_until(lambda: not process_alive(read_pid(pidfile)))
    assert zombie_children() == []


def test_cancel_stops_a_running_action_and_keeps_partial_output(write, make_request, pack_dir):
    marker = pack_dir / "running"
    entry = write("actions/long.sh", f"""
        #!/bin/bash
        echo partial
        touch {marker}
        sleep 300
    """)
    runner = ShellRunner()
    results = []
    thread = threading.Thread(
        target=lambda: results.append(runner.run(make_request(entry, runner_type="shell")))
    )
    thread.start()
    wait_until(marker.exists)
    runner.cancel()
    thread.join()
    (result,) = results
    assert result.outcome is Outcome.CANCELED
    assert result.error["type"] == "canceled"
    assert result.stdout == "partial\n"
    assert zombie_children() == []


def test_cancel_before_the_run_starts_runs_nothing(write, make_request, pack_dir):
    marker = pack_dir / "ran"
    entry = write("actions/a.sh", f"#!/bin/bash\ntouch {marker}\n")
    runner = ShellRunner()
    runner.cancel()
    result = runner.run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.CANCELED
    assert not marker.exists()


def test_the_action_runs_in_the_pack_folder(write, make_request, pack_dir):
    entry = write("actions/pwd.sh", "#!/bin/bash\npwd\n")
    result = ShellRunner().run(make_request(entry, runner_type="shell"))
    assert result.stdout.strip() == str(pack_dir)


def test_an_action_that_never_reads_a_large_stdin_document_still_finishes(write, make_request):
    entry = write("actions/ignore.sh", '#!/bin/sh\necho "ok${ATTUNE_PARAM_BLOB+ (blob in env)}"\n')
    big = {"blob": "z" * 1_000_000}
    result = ShellRunner().run(make_request(entry, runner_type="shell", parameters=big))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.stdout == "ok\n"


def test_killing_the_caller_kills_the_action(write, make_request, pack_dir):
    import eventlet

    pidfile = pack_dir / "child.pid"
    entry = write("actions/hang.sh", f"#!/bin/bash\necho $$ > {pidfile}\nsleep 300\n")
    runner = ShellRunner()
    thread = eventlet.spawn(runner.run, make_request(entry, runner_type="shell"))
    wait_until(lambda: read_pid(pidfile))
    thread.kill()
    wait_until(lambda: not process_alive(read_pid(pidfile)))


def test_actions_start_through_setpriv_so_fork_can_be_a_vfork(tmp_path):
    """No preexec_fn (which forces a full fork of the worker); setpriv sets the death signal."""
    argv, preexec = process.spawn_options(["sh", "-c", "true"], str(tmp_path), {"PATH": "/bin"})
    assert argv[:4] == [process._SETPRIV, "--pdeathsig", "KILL", "--"]
    assert argv[4:] == ["sh", "-c", "true"] and preexec is None


def test_a_missing_program_fails_before_the_spawn(tmp_path):
    with pytest.raises(FileNotFoundError):
        process.spawn_options(["no-such-interpreter"], str(tmp_path), {"PATH": "/bin"})
    with pytest.raises(FileNotFoundError):
        process.spawn_options(["./missing.sh"], str(tmp_path), {"PATH": "/bin"})
