"""What a user types, made into what the API takes: `key=value` parameters and durations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw]?)")


class InputError(ValueError):
    """Input the user can correct (a usage error): the message says what and where."""


def parse_value(text: str) -> Any:
    """JSON when the text is a JSON document (`3`, `true`, `[1,2]`, `{"a":1}`, `"x"`, `null`),
    otherwise the text itself, so `name=Ada` needs no quotes."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` words into a mapping (values by parse_value); the last of a repeated key
    wins. Only the first `=` splits, so values may hold `=`."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{pair!r} is not key=value")
        parsed[key.strip()] = parse_value(value)
    return parsed


def load_param_file(path: Path) -> dict[str, Any]:
    """The parameters in a JSON or YAML file (YAML being a superset of JSON, one parser reads
    both); the file must hold one mapping."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise InputError(f"{path} must hold a mapping of parameter names to values")
    return loaded


def parse_duration(text: str) -> int:
    """Seconds in `3600`, `90s`, `15m`, `12h`, `30d` or `2w`; zero and negatives are refused."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"{text!r} is not a duration: use seconds (3600) or a number with s, m,"
                         f" h, d or w (12h, 30d)")
    seconds = int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise InputError(f"{text!r}: a duration must be positive")
    return seconds
