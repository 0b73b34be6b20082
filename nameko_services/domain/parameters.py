"""Action parameter schemas (packs.md form) → JSON Schema validation, defaults and masking."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from .errors import ValidationError

MASK = "***"
_OWN_KEYS = ("required", "secret")


def to_json_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """`{name: {type, required, secret, ...}}` → an object JSON Schema."""
    properties = {
        name: {k: v for k, v in (spec or {}).items() if k not in _OWN_KEYS}
        for name, spec in parameters.items()
    }
    required = [name for name, spec in parameters.items() if (spec or {}).get("required")]
    return {"type": "object", "properties": properties, "required": required}


def check_schema(parameters: Any, where: str = "parameters") -> None:
    """Reject a malformed parameter declaration at definition time (422 naming the field)."""
    if not isinstance(parameters, Mapping):
        raise ValidationError("Invalid parameters", {where: "must be a mapping of name → schema"})
    for name, spec in parameters.items():
        if spec is not None and not isinstance(spec, Mapping):
            raise ValidationError("Invalid parameters", {f"{where}.{name}": "must be a mapping"})
        for flag in _OWN_KEYS:
            if spec and flag in spec and not isinstance(spec[flag], bool):
                raise ValidationError(
                    "Invalid parameters", {f"{where}.{name}.{flag}": "must be true or false"}
                )
    try:
        Draft202012Validator.check_schema(to_json_schema(parameters))
    except SchemaError as exc:
        path = ".".join(str(p) for p in exc.path if p != "properties")
        raise ValidationError(
            "Invalid parameters", {f"{where}.{path}" if path else where: exc.message}
        ) from exc


def secret_names(parameters: Mapping[str, Any]) -> list[str]:
    return sorted(name for name, spec in parameters.items() if (spec or {}).get("secret"))


def apply_defaults(parameters: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(values)
    for name, spec in parameters.items():
        if name not in result and spec and "default" in spec:
            result[name] = copy.deepcopy(spec["default"])
    return result


def validate(parameters: Mapping[str, Any], values: Any) -> dict[str, Any]:
    """Defaults applied, then validated; raises ValidationError whose message names the field.

    The first missing required parameter gives the message `Missing required parameter: <name>`.
    """
    if not isinstance(values, Mapping):
        raise ValidationError("Parameters must be an object", {"parameters": "must be an object"})
    full = apply_defaults(parameters, values)
    secret = set(secret_names(parameters))
    fields: dict[str, str] = {}
    first_message = None
    for error in Draft202012Validator(to_json_schema(parameters)).iter_errors(full):
        if error.validator == "required":
            name = error.message.split("'")[1]
            fields[f"parameters.{name}"] = "required"
            first_message = first_message or f"Missing required parameter: {name}"
        else:
            path = ".".join(str(p) for p in error.absolute_path)
            message = error.message
            if error.absolute_path and error.absolute_path[0] in secret:
                # jsonschema quotes the offending value: never for a secret parameter.
                message = f"is not valid under its schema ({error.validator}); value not shown"
            fields[f"parameters.{path}"] = message
            first_message = first_message or f"Invalid parameter {path}: {message}"
    if fields:
        missing = sorted(k for k, v in fields.items() if v == "required")
        if missing:
            first_message = f"Missing required parameter: {missing[0].split('.', 1)[1]}"
        raise ValidationError(first_message or "Invalid parameters", fields)
    return full


def mask(values: Mapping[str, Any] | None, secret: list[str]) -> dict[str, Any]:
    """A copy with every secret parameter shown as "***"."""
    return {k: (MASK if k in secret else v) for k, v in (values or {}).items()}


def mask_defaults(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """An action's parameter declarations with the `default` of each secret one shown as "***"."""
    masked = {}
    for name, spec in (parameters or {}).items():
        if isinstance(spec, Mapping) and spec.get("secret") and "default" in spec:
            spec = {**spec, "default": MASK}
        masked[name] = spec
    return masked


def mask_literals(values: Mapping[str, Any] | None, secret: list[str]) -> dict[str, Any]:
    """Rule parameters: a literal value for a secret parameter is "***"; a template is kept
    (it names where the value comes from, not the value)."""
    def shown(value: Any) -> Any:
        return value if isinstance(value, str) and "{{" in value else MASK

    return {k: (shown(v) if k in secret else v) for k, v in (values or {}).items()}
