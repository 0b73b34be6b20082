"""Load nameko.yaml-style files exactly as `nameko run --config` does (with ${VAR:default})."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KEYS_FILE_NAME = "keys.env"


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a config file with nameko's own env-var substitution so every process sees the same."""
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_keys_env(path: Path) -> None:
    """Export KEY=VALUE lines (JWT secret, encryption keys) not already in the environment."""
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())
