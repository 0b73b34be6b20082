"""The `attune` command as a user runs it: the venv's real entry point as a subprocess, its
HOME and XDG_CONFIG_HOME in the test's tmp dir (so the login cache is the test's own), against
the e2e platform."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import PASSWORD, PROJECT_ROOT, ApiClient

ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"
COMMAND_TIMEOUT_SECONDS = 120


@dataclass
class Cli:
    """Runs `attune ...` with this user's environment; `json()` for `--json` output."""

    home: Path
    url: str
    extra_env: dict[str, str]

    @property
    def credentials(self) -> Path:
        return self.home / ".config" / "attune" / "credentials.json"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ATTUNE_URL", "ATTUNE_TOKEN", "XDG_CONFIG_HOME")}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                   COLUMNS="200", **self.extra_env)
        env.update(overrides)
        return env

    def argv(self, *args: str) -> list[str]:
        return [str(ATTUNE), *args]

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = COMMAND_TIMEOUT_SECONDS,
                 **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=input, env=self.env(**env),
                              cwd=self.home, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), env=self.env(**env), cwd=self.home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def json(self, *args: str, **kwargs: Any) -> Any:
        done = self(*args, "--json", **kwargs)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)


@pytest.fixture
def make_cli(platform: Any, tmp_path: Path) -> Callable[..., Cli]:
    """Factory: a CLI user with a home of its own (`name` tells two apart in one test)."""

    def make(name: str = "user", **extra_env: str) -> Cli:
        home = tmp_path / name
        home.mkdir()
        return Cli(home, platform.api_url, extra_env)

    return make


@pytest.fixture
def cli(make_cli: Callable[..., Cli], api: ApiClient) -> Cli:
    """A user signed up over the API (a new tenant's admin), then logged in with
    `attune login --password-stdin`."""
    user = make_cli()
    done = user("login", "--url", user.url, "--username", api.user["username"],
                "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    return user
