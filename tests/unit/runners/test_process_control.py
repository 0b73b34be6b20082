"""Timeouts, cancel, process groups and reaping, with real processes."""

import signal
import threading

from runners.base import Outcome
from runners.python import PythonRunner
from runners.shell import ShellRunner
from tests.support.factories import wait_until
from tests.unit.runners.processes import marker_seconds, processes_with, zombie_children


def run_in_thread(runner, request):
    """Start `runner.run(request)`; returns the thread and the list its result lands in."""
    results = []
    thread = threading.Thread(target=lambda: results.append(runner.run(request)))
    thread.start()
    return thread, results


def test_timeout_kills_the_whole_group_including_a_grandchild(write, make_request):
    marker = marker_seconds()
    entry = write("actions/hang.sh", f"""
        #!/bin/bash
        sleep {marker} &
        echo started
        sleep 300
    """)
    thread, results = run_in_thread(
        ShellRunner(), make_request(entry, runner_type="shell", timeout_s=2))
    wait_until(lambda: processes_with(marker))
    thread.join()
    (result,) = results
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "timeout", "message": "Action timed out after 2 s"}
    assert result.stdout == "started\n"
    wait_until(lambda: not processes_with(marker))
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
    write, make_request
):
    marker = marker_seconds()
    entry = write("actions/bg.sh", f"""
        #!/bin/bash
        sleep {marker} &
        while ! pgrep -f "sleep {marker}" >/dev/null; do :; done
        echo '{{"left": "behind"}}'
    """)
    result = ShellRunner().run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"left": "behind"}
    wait_until(lambda: not processes_with(marker))
    assert zombie_children() == []


def test_cancel_stops_a_running_action_and_keeps_partial_output(write, make_request):
    marker = marker_seconds()
    entry = write("actions/long.sh", f"""
        #!/bin/bash
        echo partial
        sleep {marker}
    """)
    runner = ShellRunner()
    thread, results = run_in_thread(runner, make_request(entry, runner_type="shell"))
    wait_until(lambda: processes_with(marker))
    runner.cancel()
    thread.join()
    (result,) = results
    assert result.outcome is Outcome.CANCELED
    assert result.error["type"] == "canceled"
    assert result.stdout == "partial\n"
    assert not processes_with(marker)
    assert zombie_children() == []


def test_cancel_before_the_run_starts_runs_nothing(write, make_request):
    entry = write("actions/a.sh", "#!/bin/bash\necho ran\n")
    runner = ShellRunner()
    runner.cancel()
    result = runner.run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.CANCELED
    assert result.stdout == "" and result.duration_ms == 0


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


def test_killing_the_caller_kills_the_action(write, make_request):
    import eventlet

    marker = marker_seconds()
    entry = write("actions/hang.sh", f"#!/bin/bash\nsleep {marker}\n")
    runner = ShellRunner()
    thread = eventlet.spawn(runner.run, make_request(entry, runner_type="shell"))
    wait_until(lambda: processes_with(marker))
    thread.kill()
    wait_until(lambda: not processes_with(marker))


def test_a_missing_program_fails_before_the_spawn(write, make_request):
    entry = write("actions/a.sh", "#!/no/such/interpreter\necho hi\n")
    result = ShellRunner().run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "spawn_error",
                            "message": "Could not start /no/such/interpreter: no such executable"}
