"""The node runner and its wrapper (skipped where node is not installed)."""

import shutil

import pytest

from runners.base import Outcome
from runners.node import NodeRunner

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run(request):
    return NodeRunner().run(request)


def test_async_run_resolves_to_the_output(write, make_request):
    entry = write("actions/a.js", """
        module.exports = {
          async run(params) {
            await new Promise((resolve) => setTimeout(resolve, 1));
            console.log('printing', params.name);
            return { greeting: `hello ${params.name}` };
          },
        };
    """)
    result = run(make_request(entry, runner_type="node", parameters={"name": "node"}))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"greeting": "hello node"}
    assert result.stdout == "printing node\n"


def test_a_thrown_error_fails_with_its_class_name(write, make_request):
    entry = write("actions/e.js", """
        class LimitError extends Error {}
        exports.run = async () => { throw new LimitError('over the limit'); };
    """)
    result = run(make_request(entry, runner_type="node"))
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 1
    assert result.error == {"type": "LimitError", "message": "over the limit"}
    assert "over the limit" in result.stderr


def test_a_module_without_run_is_a_script(write, make_request):
    entry = write("actions/s.js", """
        console.log(JSON.stringify({ script: true }));
        process.exitCode = 0;
    """)
    result = run(make_request(entry, runner_type="node"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"script": True}


def test_a_script_exit_code_is_honoured(write, make_request):
    entry = write("actions/x.js", "console.error('bad'); process.exit(4);\n")
    result = run(make_request(entry, runner_type="node"))
    assert (result.outcome, result.exit_code, result.stderr) == (Outcome.FAILED, 4, "bad\n")


def test_require_attune_gives_params_context_and_secrets(write, make_request):
    entry = write("actions/sdk.js", """
        const attune = require('attune');
        exports.run = (params) => ({
          same: attune.params.x === params.x,
          id: attune.context.execution_id,
          secret: attune.secrets.get('k') === 'v-secret',
          missing: attune.secrets.get('nope'),
        });
    """)
    result = run(make_request(entry, runner_type="node", parameters={"x": 1},
                              secrets={"k": "v-secret"}))
    assert result.output == {"same": True, "id": 42, "secret": True, "missing": None}


def test_an_unhandled_rejection_in_a_script_fails_it(write, make_request):
    entry = write("actions/r.js", "Promise.reject(new TypeError('nope'));\n")
    result = run(make_request(entry, runner_type="node"))
    assert result.outcome is Outcome.FAILED
    assert result.error == {"type": "TypeError", "message": "nope"}
