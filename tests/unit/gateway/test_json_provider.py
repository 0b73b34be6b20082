"""The API's JSON answers (gateway/json_provider.py): orjson's speed, Flask's meaning."""

import datetime
import decimal
import json
import uuid

import pytest
from flask import Flask, jsonify

from gateway.json_provider import OrjsonProvider


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    return app


def answer(app: Flask, value: object) -> bytes:
    with app.app_context():
        response = jsonify(value)
    assert response.mimetype == "application/json"
    return response.get_data()


def test_non_ascii_text_is_utf8_and_reads_back_the_same(app):
    value = {"message": "café ☃ 日本語 🚀", "quote": '"\\\n\u2028'}
    body = answer(app, value)
    assert "café ☃ 日本語 🚀".encode() in body  # UTF-8, not \\u escapes
    assert json.loads(body) == value


def test_keys_keep_their_order_and_the_answer_ends_with_a_newline(app):
    body = answer(app, {"data": [], "pagination": {"total": 0, "limit": 50}, "a": 1})
    assert body == b'{"data":[],"pagination":{"total":0,"limit":50},"a":1}\n'


def test_flasks_extra_types_are_written_as_before(app):
    when = datetime.datetime(2026, 1, 27, 10, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {"when": when, "day": when.date(), "id": ident, "amount": decimal.Decimal("1.50"),
             1: "int key"}
    with app.app_context():
        expected = json.loads(app.json.dumps(value))  # Flask's standard-library provider
    assert json.loads(answer(app, value)) == expected
    assert expected["when"] == "Tue, 27 Jan 2026 10:30:00 GMT"


def test_what_orjson_refuses_the_standard_library_writes(app):
    value = {"big": 123456789012345678901234567890}
    assert json.loads(answer(app, value)) == value


def test_an_unserialisable_value_still_fails(app):
    with pytest.raises(TypeError):
        answer(app, {"set": {1, 2}})
