"""The shell runner: stdin document, ATTUNE_PARAM_* variables, shebangs, exit codes."""

from runners.base import Outcome
from runners.shell import ShellRunner, parameter_environment


def run(request):
    return ShellRunner().run(request)


def test_non_secret_parameters_become_attune_param_variables(write, make_request):
    entry = write("actions/env.sh", """
        #!/bin/bash
        pw="${ATTUNE_PARAM_PASSWORD-unset}"
        echo "$ATTUNE_PARAM_NAME|$ATTUNE_PARAM_COUNT|$ATTUNE_PARAM_TAGS|$pw"
    """)
    request = make_request(
        entry, runner_type="shell",
        parameters={"name": "world", "count": 3, "tags": ["a", "b"], "password": "pw"},
        secret_parameters=frozenset({"password"}),
    )
    assert run(request).stdout == 'world|3|["a", "b"]|unset\n'


def test_parameter_names_are_upper_cased_and_sanitised(make_request):
    request = make_request(None, parameters={"my-param.x": "v"})
    assert parameter_environment(request) == {"ATTUNE_PARAM_MY_PARAM_X": "v"}


def test_the_script_reads_the_stdin_document(write, make_request):
    entry = write("actions/stdin.sh", "#!/bin/bash\ncat\n")
    result = run(make_request(entry, runner_type="shell", parameters={"a": 1},
                              secrets={"s": "hidden-value"}))
    assert result.output["parameters"] == {"a": 1}
    assert result.output["secrets"] == {"s": "***"}
    assert result.output["context"]["execution_id"] == 42


def test_a_script_without_shebang_runs_with_bash(write, make_request):
    entry = write("actions/plain.sh", 'echo "${BASH_VERSION:+bash}"\n')
    assert run(make_request(entry, runner_type="shell")).stdout == "bash\n"


def test_a_shebang_picks_the_interpreter(write, make_request):
    entry = write("actions/py.sh", "#!/usr/bin/env python3\nprint(6 * 7)\n")
    result = run(make_request(entry, runner_type="shell"))
    assert result.output == 42


def test_non_zero_exit_fails_with_the_exit_code_and_stderr(write, make_request):
    entry = write("actions/fail.sh", "#!/bin/sh\necho 'went wrong' >&2\nexit 7\n")
    result = run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 7
    assert result.stderr == "went wrong\n"
    assert result.error == {"type": "nonzero_exit", "message": "Action exited with code 7"}


def test_killed_by_a_signal_is_reported_with_the_signal_name(write, make_request):
    entry = write("actions/kill.sh", "#!/bin/bash\nkill -KILL $$\n")
    result = run(make_request(entry, runner_type="shell"))
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == -9
    assert result.error == {"type": "killed", "message": "Action was killed by signal SIGKILL"}


def test_runs_of_one_sandbox_fork_from_its_warm_server_not_a_new_sandbox_each(write,
                                                                            make_request):
    # Inside, pid 1 is the sandbox's warm server (python_forkserver.py) and the run its child;
    # a second run finds the same server (same start time), so no sandbox was made for it.
    entry = write("actions/who.sh", """
        #!/bin/bash
        read -r -a stat < /proc/1/stat
        echo "$$ $PPID $(tr '\\0' ' ' < /proc/1/cmdline) ${stat[21]}"
    """)
    seen = [run(make_request(entry, runner_type="shell")).stdout.split() for _ in range(2)]
    for pid, parent, *server, _started in seen:
        assert pid != "1" and parent == "1", seen
        assert any(word.endswith("python_forkserver.py") for word in server), seen
    assert seen[0][-1] == seen[1][-1], seen


def test_sigpipe_is_the_scripts_default_again_after_the_warm_server(write, make_request):
    # python ignores SIGPIPE and SIGXFSZ; an action forked from it must not inherit that.
    entry = write("actions/pipe.sh", "#!/bin/bash\ngrep -E 'SigIgn' /proc/self/status\n")
    ignored = int(run(make_request(entry, runner_type="shell")).stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1)), hex(ignored)
