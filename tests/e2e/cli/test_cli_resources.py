"""`attune secret/key/packs/inquiries/rules/completion`: what users manage besides runs."""

import hashlib
import json

from tests.support.e2e import fixture_pack_path, wait_until
from tests.support.flows import make_action

SECRET_CODE = '''
import hashlib
import attune

def run(**_):
    return hashlib.sha256(attune.secrets.get("cli_secret").encode()).hexdigest()
'''
YES_NO = {"type": "object", "properties": {"approved": {"type": "boolean"}},
          "required": ["approved"]}


def test_a_secret_is_set_from_standard_input_never_from_argv(cli, api):
    value = "s3cret-from-stdin value"
    argv = cli.argv("secret", "set", "cli_secret")
    assert value not in " ".join(argv)  # by construction: the value only travels on stdin
    done = cli("secret", "set", "cli_secret", input=value + "\n")
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr
    assert [s["key"] for s in cli.json("secret", "list")] == ["cli_secret"]

    # The action that may read it gets exactly what was typed (less the final newline).
    action = make_action(api, "sec_cli", "digest", SECRET_CODE, secrets=["cli_secret"])
    ran = cli.json("run", action["ref"])
    assert ran["result"]["output"] == hashlib.sha256(value.encode()).hexdigest()

    assert cli("secret", "delete", "cli_secret").returncode == 0
    assert cli.json("secret", "list") == []


def test_key_set_get_list_delete(cli, api):
    assert cli("key", "set", "deploy.target", '{"host": "web-1", "port": 8443}').returncode == 0
    assert cli("key", "set", "greeting", "hello there").returncode == 0
    assert cli.json("key", "get", "deploy.target")["value"] == {"host": "web-1", "port": 8443}
    assert cli("key", "get", "greeting").stdout.strip() == "hello there"
    stored = api.data(api.get("/api/v1/datastore/deploy.target"))
    assert stored["value"] == {"host": "web-1", "port": 8443}
    assert [i["key"] for i in cli.json("key", "list", "--prefix", "deploy.")] == [
        "deploy.target"]
    assert cli("key", "delete", "greeting").returncode == 0
    gone = cli("key", "get", "greeting")
    assert gone.returncode == 2 and "404 not_found" in gone.stderr


def test_packs_register_uploads_a_folder_and_its_actions_run(cli):
    done = cli("packs", "register", str(fixture_pack_path("test_pack")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pack test_pack 1.0.0" in done.stdout and "environment ready" in done.stdout
    packs = {p["ref"]: p for p in cli.json("packs", "list")}
    assert {"core", "test_pack"} <= set(packs) and packs["test_pack"]["system"] is False
    ran = cli.json("run", "test_pack.echo", "message=from an uploaded pack")
    assert ran["status"] == "succeeded", ran["result"]

    rule = cli.json("rules", "disable", "test_pack.echo_on_hook")
    assert rule["enabled"] is False
    assert [r["enabled"] for r in cli.json("rules", "list")] == [False]
    again = cli("packs", "register", str(fixture_pack_path("test_pack")))
    assert again.returncode == 2 and "409 conflict" in again.stderr
    assert cli("packs", "delete", "test_pack").returncode == 0
    assert "test_pack" not in {p["ref"] for p in cli.json("packs", "list")}


def test_inquiries_respond_resumes_the_run_waiting_on_it(cli):
    waiting = cli.popen("run", "core.ask", "prompt=Deploy?", f"schema={json.dumps(YES_NO)}",
                        "--json")
    try:
        pending = wait_until(lambda: cli.json("inquiries", "list", "--status", "pending"),
                             timeout=30, message="the pending inquiry")
        assert pending[0]["prompt"] == "Deploy?"
        refused = cli("inquiries", "respond", str(pending[0]["id"]), "approved=yes")
        assert refused.returncode == 2
        assert "response.approved" in refused.stderr  # the API's field, readably
        answered = cli.json("inquiries", "respond", str(pending[0]["id"]), "approved=true")
        assert answered["status"] == "responded"
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert json.loads(out)["result"]["output"] == {"approved": True}


def test_completion_scripts_for_bash_and_zsh_complete_the_commands(make_cli):
    user = make_cli()
    bash = user("completion", "bash")
    assert bash.returncode == 0
    assert "complete -o nosort -F _attune_completion attune" in bash.stdout
    assert "_ATTUNE_COMPLETE=bash_complete" in bash.stdout
    zsh = user("completion", "zsh")
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef attune")
    # What the bash script asks the command for, and what it answers.
    asked = user(_ATTUNE_COMPLETE="bash_complete", COMP_WORDS="attune executions ",
                 COMP_CWORD="2")
    assert asked.stdout.split() == ["plain,cancel", "plain,get", "plain,list", "plain,rerun",
                                    "plain,tail"]
    assert user("completion", "fish").returncode == 2
