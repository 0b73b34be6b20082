"""Load nameko.yaml-style files exactly as `nameko run --config` does (with ${VAR:default}),
completed with the keys of the keys file, which no process ever exports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

# Defined in the domain (its settings need it); the command and the tests take it from here.
from .domain.paths import PROJECT_ROOT

KEYS_FILE_NAME = "keys.env"
JWT_SECRET = "ATTUNE_JWT_SECRET"
ENCRYPTION_KEYS = "ATTUNE_ENCRYPTION_KEYS"
DATABASE_PASSWORD = "ATTUNE_DATABASE_PASSWORD"
AMQP_PASSWORD = "ATTUNE_AMQP_PASSWORD"
SECRET_NAMES = (JWT_SECRET, ENCRYPTION_KEYS, DATABASE_PASSWORD, AMQP_PASSWORD)


def keys_path() -> Path:
    """The keys file: $ATTUNE_KEYS_FILE (a path, not a secret) or <project>/.attune/keys.env."""
    return Path(os.environ.get("ATTUNE_KEYS_FILE") or PROJECT_ROOT / ".attune" / KEYS_FILE_NAME)


def read_keys(path: Path | None = None) -> dict[str, str]:
    """NAME=VALUE lines of the keys file; {} when it is missing or not ours to read."""
    try:
        text = (path or keys_path()).read_text(encoding="utf-8")
    except (FileNotFoundError, PermissionError):
        return {}
    keys = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            keys[name.strip()] = value.strip()
    return keys


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` for its user, unless it names none or already carries one."""
    parts = urlsplit(url)
    if not password or not parts.username or parts.password is not None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def with_keys(config: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """Complete `config` in place: secrets it lacks and the passwords of its two URLs."""
    section = config.setdefault("ATTUNE", {})
    for setting, name in (("jwt_secret", JWT_SECRET), ("encryption_keys", ENCRYPTION_KEYS)):
        if not section.get(setting) and keys.get(name):
            section[setting] = keys[name]
    if section.get("database_url"):
        section["database_url"] = with_password(section["database_url"],
                                                keys.get(DATABASE_PASSWORD))
    if config.get("AMQP_URI"):
        config["AMQP_URI"] = with_password(config["AMQP_URI"], keys.get(AMQP_PASSWORD))
    return config


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a config file with nameko's own env-var substitution so every process sees the
    same, then complete it from the keys file."""
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as handle:
        return with_keys(yaml.safe_load(handle) or {}, read_keys())
