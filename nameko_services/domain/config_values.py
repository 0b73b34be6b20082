"""Checks every ATTUNE block of nameko.yaml shares (domain/settings.py, domain/backlog.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigurationError


def reject_unknown(section: Mapping[str, Any], known: Iterable[str], block: str) -> None:
    """A key the block does not know fails, naming it (a typo never passes silently)."""
    unknown = set(section) - set(known)
    if unknown:
        raise ConfigurationError(f"unknown key(s) in ATTUNE.{block}: {sorted(unknown)}")


def flag(value: Any) -> bool:
    """A yes/no setting; `${VAR:default}` substitution yields text, so "false", "0", "no",
    "off" and "" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)
