"""Reading a pack folder into a validated PackDefinition (packs.md layout). Pure: no database.

Every error names the file (relative to the pack), the line and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners import dependency_files

from . import action_spec, rule_definitions, sensor_definitions, triggers, yaml_source
from .catalog import PACK_REF_RE, PACK_REF_RULE
from .errors import ValidationError
from .settings import NETWORK_MODES
from .yaml_source import YamlFile, located_error

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,49}$")
DEPENDENCY_FILES = ("requirements.txt", "package.json")
WORKFLOW_DIR = "actions/workflows"


@dataclass(frozen=True, slots=True)
class Item:
    """One definition of the pack: its name, the file it came from and its validated values."""

    name: str
    file: YamlFile
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PackDefinition:
    """Everything a pack folder declares, validated; `root` is None for an API-only pack."""

    ref: str
    version: str
    description: str
    root: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    triggers: list[Item] = field(default_factory=list)
    actions: list[Item] = field(default_factory=list)
    sensors: list[Item] = field(default_factory=list)
    rules: list[Item] = field(default_factory=list)


def check_ref(ref: Any, version: Any) -> tuple[str, str]:
    """A pack ref ([a-z0-9_]+) and a version string; 422 naming the field otherwise."""
    fields = {}
    if not isinstance(ref, str) or not PACK_REF_RE.match(ref):
        fields["ref"] = "required" if ref in (None, "") else PACK_REF_RULE
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not VERSION_RE.match(version):
        fields["version"] = "must be a version such as 1.0.0"
    if fields:
        first = next(iter(fields))
        raise ValidationError(f"Invalid pack: {first}: {fields[first]}", fields)
    return ref, version


def empty(ref: Any, version: Any = "0.1.0", description: Any = "") -> PackDefinition:
    """An API-only pack (no folder) to which actions are added through the API."""
    ref, version = check_ref(ref, version)
    if description is not None and not isinstance(description, str):
        raise ValidationError("Invalid pack: description: must be a string",
                              {"description": "must be a string"})
    return PackDefinition(ref=ref, version=version, description=description or "", root=None)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_manifest(root: Path) -> tuple[YamlFile, dict[str, Any]]:
    path = root / "pack.yaml"
    if not path.is_file():
        alt = root / "pack.yml"
        if not alt.is_file():
            raise located_error("pack.yaml", None, "", "missing: a pack folder needs pack.yaml")
        path = alt
    doc = yaml_source.load_mapping(path, path.name)
    data = dict(doc.data)
    data.setdefault("ref", data.get("name"))
    return doc, data


def _check_dependency_files(root: Path) -> None:
    """422 naming the file, line (or dependency) and reason for a requirements.txt,
    package.json, lock file or .npmrc that would make pip or npm reach outside the pack."""
    try:
        dependency_files.check_pack(root)
    except dependency_files.DependencyFileError as exc:
        raise located_error(exc.file, exc.line, exc.field, exc.reason) from exc


def _check_container(doc: YamlFile, manifest: Mapping[str, Any]) -> None:
    """pack.yaml `container:` is `{image_user: true|false}`: whether the pack's containers keep
    their image's USER (the operator must also allow it, ATTUNE.container.allow_image_user)."""
    if "container" not in manifest:
        return
    value = manifest["container"]
    if not isinstance(value, Mapping):
        raise located_error(doc.name, doc.line_of("container"), "container",
                            "must be a mapping such as {image_user: true}")
    for key, given in value.items():
        if key != "image_user":
            raise located_error(doc.name, doc.line_of(f"container.{key}"), f"container.{key}",
                                "unknown key (known: image_user)")
        if not isinstance(given, bool):
            raise located_error(doc.name, doc.line_of("container.image_user"),
                                "container.image_user", "must be true or false")


def _check_network(doc: YamlFile, manifest: Mapping[str, Any]) -> None:
    """pack.yaml `network:` is `outbound` or `none` (docs/packs.md); a typo must not quietly
    mean either."""
    if "network" in manifest and manifest["network"] not in NETWORK_MODES:
        raise located_error(doc.name, doc.line_of("network"), "network",
                            f"must be one of: {', '.join(NETWORK_MODES)}")


def _meta(root: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """pack.yaml's other keys plus digests of dependency files (environment rebuild keys)."""
    meta = {k: v for k, v in manifest.items() if k not in ("ref", "name", "version",
                                                             "description")}
    for name in DEPENDENCY_FILES:
        path = root / name
        if path.is_file():
            meta[f"{name.replace('.', '_')}_sha256"] = hashlib.sha256(
                path.read_bytes()).hexdigest()
    return meta


def _load_items(
    root: Path, files: list[Path], validate: Callable[[dict[str, Any], YamlFile], Any],
    defaults: Callable[[Path, dict[str, Any]], dict[str, Any]] | None = None,
) -> list[Item]:
    """Validate each file; a duplicate name is an error on the second file's `name`."""
    items: list[Item] = []
    seen: dict[str, str] = {}
    for path in files:
        doc = yaml_source.load_mapping(path, _relative(root, path))
        spec = dict(doc.data)
        spec.setdefault("name", path.stem)
        if defaults:
            spec = defaults(path, spec)
        try:
            values = validate(spec, doc)
        except ValidationError as exc:
            if exc.details.get("file"):
                raise
            raise doc.error(exc) from exc
        name = values["name"]
        if name in seen:
            raise located_error(doc.name, doc.line_of("name"), "name",
                                f"'{name}' is also defined in {seen[name]}")
        seen[name] = doc.name
        items.append(Item(name, doc, values))
    return items


def _checked_pack_field(doc: YamlFile, spec: dict[str, Any], pack_ref: str) -> dict[str, Any]:
    """`pack:` in an item file is optional but must name this pack."""
    pack = spec.pop("pack", pack_ref)
    if pack != pack_ref:
        raise located_error(doc.name, doc.line_of("pack"), "pack",
                            f"names pack '{pack}' but the file is in pack '{pack_ref}'")
    return spec


def _workflow_defaults(path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """A file in actions/workflows/ is a workflow action; a bare task list is its block."""
    spec.setdefault("runner_type", "workflow")
    if "workflow" not in spec and "entry_point" not in spec and "tasks" in spec:
        spec["workflow"] = {k: spec.pop(k) for k in list(spec) if k in action_spec.WORKFLOW_KEYS
                            and k != "description"}
    return spec


def _actions(root: Path, ref: str) -> list[Item]:
    def validate(spec: dict[str, Any], doc: YamlFile) -> dict[str, Any]:
        return action_spec.normalize(_checked_pack_field(doc, spec, ref), pack_dir=root)

    items = _load_items(root, _yaml_files(root / "actions"), validate)
    used = {i.values["entry_point"] for i in items if i.values["runner_type"] == "workflow"}
    extra = [p for p in _yaml_files(root / WORKFLOW_DIR) if _relative(root, p) not in used]
    more = _load_items(root, extra, validate, _workflow_defaults)
    clash = {i.name for i in items} & {i.name for i in more}
    for item in more:
        if item.name in clash:
            raise located_error(item.file.name, item.file.line_of("name"), "name",
                                f"action '{item.name}' is also defined in actions/")
    return items + more


def load_pack(root: Path) -> PackDefinition:
    """Read and validate a pack folder: pack.yaml, actions, triggers, sensors and rules."""
    if not root.is_dir():
        raise ValidationError(f"Pack folder {root} does not exist",
                              {"path": "must be an existing directory"})
    doc, manifest = _read_manifest(root)
    try:
        ref, version = check_ref(manifest.get("ref"), manifest.get("version", "0.1.0"))
        description = manifest.get("description") or ""
        if not isinstance(description, str):
            raise ValidationError("Invalid pack", {"description": "must be a string"})
    except ValidationError as exc:
        raise doc.error(exc) from exc
    _check_container(doc, manifest)
    _check_network(doc, manifest)
    _check_dependency_files(root)

    def trigger(spec: dict[str, Any], file: YamlFile) -> dict[str, Any]:
        return triggers.normalize(_checked_pack_field(file, spec, ref))

    def rule(spec: dict[str, Any], file: YamlFile) -> dict[str, Any]:
        return rule_definitions.normalize(_checked_pack_field(file, spec, ref))

    declared: list[Item] = []

    def sensor(spec: dict[str, Any], file: YamlFile) -> dict[str, Any]:
        values, inline = sensor_definitions.normalize(
            _checked_pack_field(file, spec, ref), pack_dir=root, pack_ref=ref)
        declared.extend(Item(t["name"], file, t) for t in inline)
        return values

    trigger_items = _load_items(root, _yaml_files(root / "triggers"), trigger)
    sensor_items = _load_items(root, _yaml_files(root / "sensors"), sensor)
    known = {i.name: i.file.name for i in trigger_items}
    for item in declared:
        if item.name in known:
            raise located_error(item.file.name, item.file.line_of("trigger_types"),
                                "trigger_types", f"trigger '{item.name}' is also defined in "
                                f"{known[item.name]}")
        known[item.name] = item.file.name
    return PackDefinition(
        ref=ref, version=version, description=description, root=root,
        meta=_meta(root, manifest),
        triggers=trigger_items + declared,
        actions=_actions(root, ref),
        sensors=sensor_items,
        rules=_load_items(root, _yaml_files(root / "rules"), rule),
    )
