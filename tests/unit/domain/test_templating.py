"""Sandboxed templating: types kept, missing values null, errors named."""

import pytest

from nameko_services.domain.templating import (
    DatastoreView,
    TemplateError,
    check_expression,
    check_template,
    evaluate,
    render,
)

CTX = {"trigger": {"data": {"severity": "high", "count": 150, "user": {"email": "a@b.c"}}},
       "params": {"items": [1, 2, 3]}}


def test_a_lone_expression_keeps_its_json_type():
    assert render("{{ params.items }}", CTX) == [1, 2, 3]
    assert render("{{ trigger.data.count }}", CTX) == 150
    assert render({"n": "{{ trigger.data.count > 100 }}"}, CTX) == {"n": True}


def test_mixed_text_renders_to_a_string():
    assert render("count={{ trigger.data.count }}", CTX) == "count=150"


def test_nested_paths_resolve():
    assert render("{{ trigger.data.user.email }}", CTX) == "a@b.c"


def test_missing_values_render_as_null_not_an_error():
    assert render("{{ trigger.data.nope.deeper }}", CTX) is None
    assert render("x{{ trigger.data.nope }}y", CTX) == "xy"


def test_plain_values_pass_through_untouched():
    assert render({"a": [1, "b", None, {"c": 2.5}]}, CTX) == {"a": [1, "b", None, {"c": 2.5}]}


def test_expressions_with_and_without_braces():
    assert evaluate("{{ trigger.data.severity == 'high' }}", CTX) is True
    assert evaluate("trigger.data.count > 100", CTX) is True
    assert evaluate("{{ trigger.data.severity in ['low', 'info'] }}", CTX) is False


def test_syntax_errors_name_the_expression():
    with pytest.raises(TemplateError) as info:
        check_expression("{{ trigger.data.severity == }}")
    assert "trigger.data.severity ==" in str(info.value)
    with pytest.raises(TemplateError):
        check_template({"a": ["ok", "{{ broken( }}"]})


def test_evaluation_errors_are_template_errors():
    with pytest.raises(TemplateError):
        render("{{ 1 / 0 }}", CTX)


def test_the_sandbox_refuses_private_attributes():
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", CTX)


def test_datastore_view_resolves_dotted_keys_lazily():
    calls = []

    def loader():
        calls.append(1)
        return {"threshold": 100, "config.api_url": "https://x", "config.retries": 3}

    ctx = {**CTX, "datastore": DatastoreView(loader)}
    assert calls == []
    assert render("{{ datastore.config.api_url }}", ctx) == "https://x"
    assert evaluate("{{ trigger.data.count > datastore.threshold }}", ctx) is True
    assert render("{{ datastore.missing }}", ctx) is None
    assert render("{{ datastore.config }}", ctx) == {"api_url": "https://x", "retries": 3}
