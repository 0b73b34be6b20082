"""Checks every ATTUNE block of nameko.yaml shares (domain/settings.py, domain/backlog.py)."""

from __future__ import annotations

import math
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


def bounded(section: Mapping[str, Any], key: str, default: float, block: str, *,
            minimum: float, maximum: float, whole: bool = False) -> float:
    """A number of the block within [minimum, maximum] (a whole one when `whole`); text from
    `${VAR:default}` is read as a number; anything else fails naming the key and the bounds."""
    given = section.get(key, default)
    try:
        if isinstance(given, bool):
            raise ValueError
        value = float(given.strip() if isinstance(given, str) else given)
    except (TypeError, ValueError):
        value = math.nan
    if not minimum <= value <= maximum or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(
            f"ATTUNE.{block}.{key} must be {kind} from {minimum:g} to {maximum:g}, not {given!r}")
    return value
