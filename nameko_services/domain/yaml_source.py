"""Pack yaml files read with the line of every key, so a bad field is reported with its line."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ValidationError

MAX_FILE_BYTES = 1024 * 1024
# Aliases may share nodes; the walk counts every visit so a "billion laughs" file stops early.
MAX_NODES = 100_000


@dataclass(frozen=True, slots=True)
class YamlFile:
    """A parsed yaml document, its path relative to the pack and the 1-based line of each key."""

    name: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, field_path: str) -> int:
        """The line of the field, or of its nearest enclosing key that exists in the file."""
        path = field_path
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return self.lines.get("", 1)

    def error(self, exc: ValidationError, prefix: str = "") -> ValidationError:
        """Re-raise a field error as one naming this file, the line and the field."""
        field_path, reason = next(iter(exc.fields.items()), ("", exc.message))
        full = f"{prefix}{field_path}" if field_path else prefix.rstrip(".")
        return located_error(self.name, self.line_of(full), full, reason, exc.fields)


def located_error(
    file: str, line: int | None, field_path: str, reason: str,
    fields: dict[str, str] | None = None,
) -> ValidationError:
    where = f"{file}, line {line}" if line else file
    subject = f"field '{field_path}': " if field_path else ""
    return ValidationError(
        f"{where}: {subject}{reason}",
        fields or {field_path or file: reason},
        file=file, line=line, field=field_path or None,
    )


class _Counter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.seen = 0

    def tick(self, line: int) -> None:
        self.seen += 1
        if self.seen > MAX_NODES:
            raise located_error(self.file, line, "", f"more than {MAX_NODES} yaml nodes")


class _Loader(yaml.SafeLoader):
    """Safe loading with timestamps kept as text: definitions are stored as JSON."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _check_json(data: Any, path: str, doc: YamlFile) -> None:
    """Only storable JSON may reach the database (no binary, sets, NaN, infinity or NUL)."""
    if isinstance(data, dict):
        for key, value in data.items():
            _check_json(value, f"{path}.{key}" if path else str(key), doc)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _check_json(value, f"{path}.{index}" if path else str(index), doc)
    elif isinstance(data, float) and not math.isfinite(data):
        raise located_error(doc.name, doc.line_of(path), path, "must be a finite number")
    elif isinstance(data, str) and "\x00" in data:
        raise located_error(doc.name, doc.line_of(path), path, "contains a NUL character")
    elif not isinstance(data, str | int | float | bool | None):
        raise located_error(doc.name, doc.line_of(path), path,
                            f"a {type(data).__name__} is not a JSON value")


def _walk(node: yaml.Node, prefix: str, lines: dict[str, int], counter: _Counter) -> None:
    counter.tick(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            lines.setdefault(path, key_node.start_mark.line + 1)
            _walk(value_node, path, lines, counter)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}" if prefix else str(index)
            lines.setdefault(path, item.start_mark.line + 1)
            _walk(item, path, lines, counter)


def parse(text: str, name: str) -> YamlFile:
    """Parse one yaml document safely; a syntax error names the file and line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {"": 1}
        if node is None:
            return YamlFile(name, None, lines)
        _walk(node, "", lines, _Counter(name))
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise located_error(name, line, "", f"invalid yaml: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise located_error(name, None, "", f"invalid yaml: {exc}") from exc
    finally:
        loader.dispose()
    doc = YamlFile(name, data, lines)
    _check_json(data, "", doc)
    return doc


def load(path: Path, name: str) -> YamlFile:
    """Read and parse a file of a pack; `name` is its path relative to the pack, for messages."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise located_error(name, None, "", f"file larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise located_error(name, None, "", f"cannot be read: {exc}") from exc
    return parse(text, name)


def load_mapping(path: Path, name: str) -> YamlFile:
    """Like load(), but the document must be a mapping (every pack file is one)."""
    doc = load(path, name)
    if not isinstance(doc.data, dict):
        raise located_error(name, 1, "", "must be a yaml mapping (key: value pairs)")
    return doc
