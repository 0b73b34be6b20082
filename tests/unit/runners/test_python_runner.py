"""The python runner and its wrapper, with real interpreters."""

import json

from runners.base import Outcome
from runners.python import PythonRunner


def run(request):
    return PythonRunner().run(request)


def test_run_return_value_becomes_output_and_prints_stay_in_stdout(write, make_request):
    entry = write("actions/echo.py", """
        def run(message):
            print("printing", message)
            return {"message": message}
    """)
    result = run(make_request(entry, parameters={"message": "hi"}))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"message": "hi"}
    assert result.stdout == "printing hi\n"
    assert result.exit_code == 0
    assert result.error is None
    assert result.duration_ms >= 0


def test_async_run_is_awaited(write, make_request):
    entry = write("actions/a.py", """
        import asyncio
        async def run(n):
            await asyncio.sleep(0)
            return n * 2
    """)
    assert run(make_request(entry, parameters={"n": 21})).output == 42


def test_an_exception_fails_with_its_class_name_and_the_traceback_in_stderr(write, make_request):
    entry = write("actions/boom.py", """
        class QuotaExceeded(Exception):
            pass
        def run():
            raise QuotaExceeded("too many calls")
    """)
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 1
    assert result.error == {"type": "QuotaExceeded", "message": "too many calls"}
    assert "Traceback" in result.stderr
    assert "raise QuotaExceeded" in result.stderr
    assert "python_wrapper" not in result.stderr


def test_a_module_without_run_is_a_script_whose_json_stdout_is_the_output(write, make_request):
    entry = write("actions/script.py", """
        import json
        if __name__ == "__main__":
            print(json.dumps({"ok": True, "n": [1, 2]}))
    """)
    result = run(make_request(entry))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"ok": True, "n": [1, 2]}


def test_script_stdout_that_is_not_one_json_document_leaves_output_empty(write, make_request):
    entry = write("actions/script.py", 'print("hello")\nprint("{}")\n')
    result = run(make_request(entry))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output is None
    assert result.stdout == "hello\n{}\n"


def test_script_exit_code_is_honoured_with_stderr_captured(write, make_request):
    entry = write("actions/fail.py", """
        #!/usr/bin/env python3
        import sys
        print("Starting action...", file=sys.stderr)
        sys.exit(1)
    """)
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 1
    assert result.stderr == "Starting action...\n"
    assert result.error["type"] == "nonzero_exit"
    assert "1" in result.error["message"]


def test_sys_exit_inside_run_sets_the_exit_code(write, make_request):
    entry = write("actions/x.py", "import sys\ndef run():\n    sys.exit(3)\n")
    result = run(make_request(entry))
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 3)


def test_the_sdk_sees_params_context_and_secrets(write, make_request):
    entry = write("actions/sdk.py", """
        import attune
        def run(**kwargs):
            return {"params": attune.params, "execution_id": attune.context["execution_id"],
                    "has_key": attune.secrets.get("api_key") == "k-123",
                    "missing": attune.secrets.get("nope")}
    """)
    result = run(make_request(entry, parameters={"a": 1}, secrets={"api_key": "k-123"}))
    assert result.output == {"params": {"a": 1}, "execution_id": 42, "has_key": True,
                             "missing": None}


def test_modules_next_to_the_action_and_in_the_pack_import(write, make_request):
    write("lib/helpers.py", "def double(x):\n    return 2 * x\n")
    write("actions/sibling.py", "VALUE = 5\n")
    entry = write("actions/main.py", """
        from lib.helpers import double
        import sibling
        def run():
            return double(sibling.VALUE)
    """)
    assert run(make_request(entry)).output == 10


def test_secrets_are_masked_in_stdout_stderr_output_and_error(write, make_request):
    entry = write("actions/leak.py", """
        import sys, attune
        def run(password):
            key = attune.secrets.get("api_key")
            print("key", key, "pw", password, "token", attune.context["token"])
            print("err", key, file=sys.stderr)
            raise RuntimeError(f"bad {key} {password}")
    """)
    request = make_request(entry, parameters={"password": "pw-999"},
                           secret_parameters=frozenset({"password"}),
                           secrets={"api_key": "sk-live-abc"})
    result = run(request)
    for text in (result.stdout, result.stderr, json.dumps(result.error)):
        assert "sk-live-abc" not in text
        assert "pw-999" not in text
        assert "execution-token-value" not in text
    assert result.stdout == "key *** pw *** token ***\n"
    assert result.error == {"type": "RuntimeError", "message": "bad *** ***"}


def test_secret_in_the_return_value_is_masked(write, make_request):
    entry = write("actions/ret.py", """
        import attune
        def run():
            return {"k": attune.secrets.get("s")}
    """)
    assert run(make_request(entry, secrets={"s": "topsecret"})).output == {"k": "***"}


def test_parameters_and_secrets_are_not_in_argv_or_environment(write, make_request, monkeypatch):
    entry = write("actions/env.py", """
        import os
        def run(**kwargs):
            with open("/proc/self/cmdline", "rb") as f:
                argv = f.read().decode()
            return {"env": dict(os.environ), "argv": argv}
    """)
    result = run(make_request(entry, parameters={"value": "param-value-1"},
                              secrets={"s": "secret-value-1"}))
    env, argv = result.output["env"], result.output["argv"]
    assert "param-value-1" not in argv and "secret-value-1" not in argv
    assert "param-value-1" not in json.dumps(env)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "ATTUNE_EXECUTION_ID",
                        "ATTUNE_ACTION_REF", "LC_CTYPE", "PWD"}
    # conftest sets the platform's own secrets in this process; the child never sees them.
    assert "ATTUNE_JWT_SECRET" not in env and "ATTUNE_ENCRYPTION_KEYS" not in env


def test_stdout_is_capped_with_the_truncation_marker(write, make_request):
    entry = write("actions/big.py", """
        import sys
        sys.stdout.write("x" * 5000)
        sys.stderr.write("e" * 10)
    """)
    result = run(make_request(entry, max_output_bytes=1000))
    assert result.truncated is True
    assert result.stdout == "x" * 1000 + "... (output truncated after 1000 bytes)"
    assert result.stderr == "e" * 10
    assert result.output is None


def test_a_flood_of_output_is_read_and_discarded_past_the_cap(write, make_request):
    entry = write("actions/flood.py", """
        import sys
        chunk = "y" * 65536
        for _ in range(800):  # 50 MiB
            sys.stdout.write(chunk)
        print("done", file=sys.stderr)
    """)
    result = run(make_request(entry, max_output_bytes=4096))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.truncated is True
    assert len(result.stdout) == 4096 + len("... (output truncated after 4096 bytes)")
    assert result.stderr == "done\n"


def test_a_syntax_error_is_reported_as_such(write, make_request):
    entry = write("actions/bad.py", "def run(:\n    pass\n")
    result = run(make_request(entry))
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "SyntaxError"


def test_a_missing_interpreter_fails_clearly(write, make_request):
    entry = write("actions/a.py", "def run():\n    return 1\n")
    result = run(make_request(entry, interpreter="/nonexistent/python"))
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "spawn_error"
