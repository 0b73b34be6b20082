"""Helpers for runner tests: a pack folder per test and a request builder."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runners.base import RunRequest
from tests.support.sandboxes import open_dir, sandbox_for


@pytest.fixture(scope="session")
def sandbox_state() -> Iterator[Path]:
    """The sandboxes' own files (passwd, routes…), shared by the session."""
    with open_dir("attune-sandbox-") as path:
        yield path


@pytest.fixture
def pack_dir() -> Iterator[Path]:
    """A pack folder the sandbox's uid can read (pytest's tmp_path is closed to it)."""
    with open_dir() as path:
        (path / "actions").mkdir()
        (path / "actions").chmod(0o755)
        yield path


@pytest.fixture
def write(pack_dir: Path):
    """write("actions/x.py", source) → the absolute path (dedented, executable)."""

    def write_file(relative: str, source: str) -> Path:
        path = pack_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        path.chmod(0o755)
        for folder in path.relative_to(pack_dir).parents:
            (pack_dir / folder).chmod(0o755)
        return path

    return write_file


@pytest.fixture
def make_request(pack_dir: Path, sandbox_state: Path):
    def make(entry: Path | None = None, **overrides: Any) -> RunRequest:
        values: dict[str, Any] = {
            "execution_id": 42,
            "action_ref": "test.action",
            "runner_type": "python",
            "working_dir": pack_dir,
            "entry_point": entry,
            "parameters": {},
            "context": {"execution_id": 42, "action_ref": "test.action", "attempt": 1,
                        "item": None, "item_index": None, "api_url": "http://127.0.0.1:9",
                        "token": "execution-token-value"},
            "timeout_s": 30,
            "kill_grace_s": 5,
            "sandbox": sandbox_for(sandbox_state, pack_dir),
        }
        values.update(overrides)
        return RunRequest(**values)

    return make
