"""`attune create-user` as an operator runs it: a subprocess on the test database with the password
on standard input; the user it prints then logs in over the API."""

import contextlib
import json
import os
import pty
import select
import subprocess
import time
import uuid

import click
import pytest

from nameko_services import cli
from nameko_services.config import PROJECT_ROOT
from tests.support.factories import PASSWORD

pytestmark = pytest.mark.integration

ATTUNE = str(PROJECT_ROOT / ".venv" / "bin" / "attune")


@pytest.fixture
def create_user(config, engine):
    """Run `attune create-user ARGS` against the test database, `stdin` as its input."""
    env = {**os.environ, "ATTUNE_DATABASE_URL": config["ATTUNE"]["database_url"],
           "ATTUNE_AMQP_URI": config["AMQP_URI"]}

    def run(*args: str, stdin: str = "", **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ATTUNE, "create-user", *args, "--config", str(PROJECT_ROOT / "nameko.yaml")],
            input=stdin, cwd=PROJECT_ROOT, env={**env, **extra_env}, capture_output=True,
            text=True, timeout=60, check=False)

    return run


def name() -> str:
    return f"op-{uuid.uuid4().hex[:10]}"


def login(client, username, password=PASSWORD):
    return client.post("/auth/login", json={"username": username, "password": password})


def printed_json(done: subprocess.CompletedProcess) -> dict:
    """The --json line (a first run may print a `==> created keys.env` line before it)."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_operator_creates_an_admin_in_a_new_tenant_who_then_logs_in(client, create_user):
    username = name()
    user = printed_json(create_user(username, "--password-stdin", "--json",
                                    stdin=f"{PASSWORD}\n"))
    assert user["username"] == username and user["role"] == "admin"
    response = login(client, username)
    assert response.status_code == 200, response.json  # the newline was not part of it
    assert response.json["data"]["user"] == user
    token = {"Authorization": f"Bearer {response.json['data']['access_token']}"}
    listed = client.get("/api/v1/users", headers=token).json["data"]
    assert [u["id"] for u in listed] == [user["id"]]  # alone in a tenant of its own
    trail = client.get(f"/api/v1/audit?entity_type=user&entity_id={user['id']}",
                       headers=token).json["data"]
    assert [(e["action"], e["actor_type"], e["actor"]) for e in trail] == [
        ("user.created", "service", "cli")]
    assert trail[0]["details"] == {"username": username, "role": "admin"}


def test_a_user_joins_an_existing_tenant_with_the_role_given(client, make_user, create_user):
    admin, headers = make_user()
    username = name()
    done = create_user(username, "--tenant", str(admin["tenant_id"]), "--role", "viewer",
                       "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    listed = {u["username"]: u for u in client.get("/api/v1/users", headers=headers).json["data"]}
    created = listed[username]
    assert created["role"] == "viewer" and created["tenant_id"] == admin["tenant_id"]
    assert done.stdout.strip().splitlines()[-1] == (
        f"created user {username}: id {created['id']}, tenant {admin['tenant_id']}, role viewer")
    assert login(client, username).json["data"]["user"]["role"] == "viewer"


def test_a_taken_name_fails_with_exit_1_and_says_so(create_user):
    username = name()
    assert create_user(username, "--password-stdin", stdin=PASSWORD).returncode == 0
    again = create_user(username, "--password-stdin", stdin="another-password")
    assert again.returncode == 1
    assert again.stderr.strip() == f"attune: error: Username '{username}' is taken"
    assert "created user" not in again.stdout


@pytest.mark.parametrize(("args", "stdin", "said"), [
    (("--tenant", "987654321"), PASSWORD, "Tenant 987654321 not found"),
    ((), "short", "password must be a string of at least 8 characters"),
    ((), "", "password must be a string of at least 8 characters"),
    ((), "\n", "password must be a string of at least 8 characters"),
    (("--role", "root"), PASSWORD, "'root' is not one of"),
])
def test_an_unknown_tenant_a_weak_password_or_a_bad_role_fails_clearly(
    client, create_user, args, stdin, said
):
    username = name()
    done = create_user(username, *args, "--password-stdin", stdin=stdin)
    assert done.returncode in (1, 2)  # 2: click refused the arguments themselves
    assert said in done.stderr
    assert login(client, username, stdin.strip() or PASSWORD).status_code == 401  # nobody made


def test_the_password_can_come_from_nowhere_but_stdin_or_a_prompt(client, create_user):
    """No option takes a value that could be a password, and the environment is not read: with no
    terminal to prompt on and no --password-stdin, it refuses."""
    command = next(c for c in cli.OPERATOR_COMMANDS if c.name == "create-user")
    params = {param.name: param for param in command.params}
    assert set(params) == {"config", "username", "role", "tenant", "password_stdin", "json"}
    assert params["password_stdin"].is_flag and not params["password_stdin"].get_default(
        click.Context(command))
    username = name()
    done = create_user(username, stdin=PASSWORD, ATTUNE_PASSWORD=PASSWORD, PASSWORD=PASSWORD)
    assert done.returncode == 1
    assert "no terminal to prompt for the password on" in done.stderr
    assert "--password-stdin" in done.stderr
    assert login(client, username).status_code == 401


def test_an_attempt_to_pass_the_password_as_an_argument_is_refused(client, create_user):
    username = name()
    done = create_user(username, "--password", PASSWORD)
    assert done.returncode == 2 and "No such option '--password'" in done.stderr
    assert login(client, username).status_code == 401


class Terminal:
    """`attune create-user` on a pseudo-terminal of its own, so getpass prompts on it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once
            os.execve(ATTUNE, [ATTUNE, "create-user", *args], env)  # noqa: S606
        self.seen = b""

    def read_until(self, text: bytes, deadline: float = 30.0) -> bytes:
        """Everything up to `text`, waiting for it no longer than `deadline` seconds."""
        end = time.monotonic() + deadline
        while text not in self.seen:
            left = end - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; it showed {self.seen!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}; it showed {self.seen!r}"
                self.seen += chunk
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def exit_code(self) -> int:
        """The child's exit status (after draining what it still prints)."""
        with contextlib.suppress(OSError):
            while select.select([self.fd], [], [], 30)[0] and (chunk := os.read(self.fd, 4096)):
                self.seen += chunk
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


@pytest.fixture
def terminal_env(config, engine):
    return {**os.environ, "ATTUNE_DATABASE_URL": config["ATTUNE"]["database_url"],
            "ATTUNE_AMQP_URI": config["AMQP_URI"]}


def test_at_a_terminal_the_password_is_asked_twice_and_not_echoed(client, terminal_env):
    username = name()
    term = Terminal([username, "--config", str(PROJECT_ROOT / "nameko.yaml")], terminal_env)
    term.read_until(b"Password: ")
    term.type(PASSWORD)
    term.read_until(b"Password (again): ")
    term.type(PASSWORD)
    assert term.exit_code() == 0, term.seen
    assert f"created user {username}:".encode() in term.seen
    assert PASSWORD.encode() not in term.seen  # getpass turned echo off
    assert login(client, username).status_code == 200


def test_at_a_terminal_two_different_passwords_create_nobody(client, terminal_env):
    username = name()
    term = Terminal([username, "--config", str(PROJECT_ROOT / "nameko.yaml")], terminal_env)
    term.read_until(b"Password: ")
    term.type(PASSWORD)
    term.read_until(b"Password (again): ")
    term.type(PASSWORD + "x")
    assert term.exit_code() == 1
    assert b"the two passwords differ" in term.seen
    assert login(client, username).status_code == 401
