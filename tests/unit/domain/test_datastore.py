"""Pure checks of the datastore, secrets and JSON-value rules (no database)."""

import pytest

from nameko_services.domain import datastore, json_values, secrets
from nameko_services.domain.errors import BadRequestError, ValidationError


@pytest.mark.parametrize("key", ["a", "api_url", "a/b/c", "x:y.z-w_1", "k" * 400])
def test_valid_keys_are_accepted(key):
    assert datastore.is_valid_key(key)
    assert datastore.check_key(key) == key


@pytest.mark.parametrize("key", ["", "k" * 401, "has space", "semi;colon", "quote'", "é",
                                 "new\nline", None, 5, ["a"]])
def test_invalid_keys_are_rejected_with_a_field_error(key):
    assert not datastore.is_valid_key(key)
    with pytest.raises(ValidationError) as caught:
        datastore.check_key(key)
    assert "key" in caught.value.fields


@pytest.mark.parametrize("ttl", [None, 1, 3600, datastore.MAX_TTL_SECONDS])
def test_valid_ttls_pass(ttl):
    assert datastore.check_ttl(ttl) == ttl


@pytest.mark.parametrize("ttl", [0, -1, 1.5, "10", True, datastore.MAX_TTL_SECONDS + 1])
def test_invalid_ttls_are_422(ttl):
    with pytest.raises(ValidationError):
        datastore.check_ttl(ttl)


@pytest.mark.parametrize("value", [None, 1, 1.5, True, "s", [1, {"a": None}], {"k": [[]]}])
def test_storable_json_has_no_problem(value):
    assert json_values.problem(value) is None


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"a": "x\x00"}, {"\x00": 1},
                                   {1: "int key"}, {"a": object()}])
def test_values_jsonb_refuses_are_found(value):
    assert json_values.problem(value)
    with pytest.raises(ValidationError):
        json_values.ensure_storable(value, "value")


def test_deep_nesting_is_a_problem():
    value: list = []
    for _ in range(json_values.MAX_DEPTH + 5):
        value = [value]
    assert "deeper" in json_values.problem(value)


def test_parse_accepts_any_json_value_and_empty_is_none():
    assert json_values.parse(b"") is None
    assert json_values.parse(b"  ") is None
    assert json_values.parse(b"null") is None
    assert json_values.parse(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert json_values.parse(b"42") == 42


@pytest.mark.parametrize("raw", [b"{", b"NaN", b"[Infinity]", b"\xff", b'"\\u0000"',
                                 b"[" * 100_000])
def test_parse_refuses_what_cannot_be_stored_with_400(raw):
    with pytest.raises(BadRequestError):
        json_values.parse(raw)


@pytest.mark.parametrize("key, value, fields", [
    ("ok", "v", set()),
    ("bad key", "v", {"key"}),
    ("ok", "", {"value"}),
    ("ok", 1, {"value"}),
    ("ok", "a\x00b", {"value"}),
    ("", None, {"key", "value"}),
])
def test_secret_checks_name_each_bad_field(key, value, fields):
    if not fields:
        secrets.check(key, value)
        return
    with pytest.raises(ValidationError) as caught:
        secrets.check(key, value)
    assert set(caught.value.fields) == fields
