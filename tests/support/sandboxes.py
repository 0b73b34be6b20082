"""Sandboxes for runner-level tests: the folders a sandbox shows must be traversable by its
uid (bwrap resolves them as that uid), which pytest's own tmp_path (mode 700) is not."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runners.sandbox import Host, Sandbox

TEST_OWNER = 4242


@contextmanager
def open_dir(prefix: str = "attune-test-") -> Iterator[Path]:
    """A temporary folder anyone may traverse and read, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sandbox_for(state_dir: Path, *shown: Path | str, owner: int = TEST_OWNER,
                api_socket: Path | None = None, **fields: Any) -> Sandbox:
    """A sandbox of `owner` showing `shown` read-only (network off unless asked)."""
    return Sandbox(host=Host(state_dir=state_dir, api_socket=api_socket), owner=owner,
                   read_only=tuple(str(p) for p in shown), **fields)
