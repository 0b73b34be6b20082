"""Parameter schemas in packs.md form: defaults, validation messages, masking."""

import pytest

from nameko_services.domain.errors import ValidationError
from nameko_services.domain.parameters import (
    apply_defaults,
    check_schema,
    mask,
    secret_names,
    validate,
)

SCHEMA = {
    "url": {"type": "string", "required": True},
    "token": {"type": "string", "secret": True},
    "items": {"type": "array", "default": []},
    "mode": {"type": "string", "enum": ["a", "b"]},
}


def test_missing_required_parameter_names_it():
    with pytest.raises(ValidationError) as info:
        validate(SCHEMA, {})
    assert info.value.message == "Missing required parameter: url"
    assert info.value.fields == {"parameters.url": "required"}


def test_defaults_are_applied_before_validation():
    assert validate(SCHEMA, {"url": "http://x"}) == {"url": "http://x", "items": []}
    assert apply_defaults(SCHEMA, {"items": [1]})["items"] == [1]


def test_wrong_types_and_enums_are_reported_per_field():
    with pytest.raises(ValidationError) as info:
        validate(SCHEMA, {"url": 5, "mode": "c"})
    assert set(info.value.fields) == {"parameters.url", "parameters.mode"}


def test_secret_parameters_are_masked():
    assert secret_names(SCHEMA) == ["token"]
    assert mask({"url": "u", "token": "s3cr3t"}, ["token"]) == {"url": "u", "token": "***"}


def test_bad_declarations_are_rejected_with_the_field():
    with pytest.raises(ValidationError) as info:
        check_schema({"x": {"type": "nonsense"}})
    assert any(k.startswith("parameters.x") for k in info.value.fields)
    with pytest.raises(ValidationError):
        check_schema({"x": {"required": "yes"}})
    with pytest.raises(ValidationError):
        check_schema(["not", "a", "mapping"])
    check_schema(SCHEMA)
