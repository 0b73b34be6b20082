"""Helpers for runner tests: a pack folder per test and a request builder."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from runners.base import RunRequest


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    (tmp_path / "actions").mkdir()
    return tmp_path


@pytest.fixture
def write(pack_dir: Path):
    """write("actions/x.py", source) → the absolute path (dedented, executable)."""

    def write_file(relative: str, source: str) -> Path:
        path = pack_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        path.chmod(0o755)
        return path

    return write_file


@pytest.fixture
def make_request(pack_dir: Path):
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
        }
        values.update(overrides)
        return RunRequest(**values)

    return make
