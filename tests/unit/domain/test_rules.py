"""Rule matching: criteria, parameter rendering and datastore lookups."""

from datetime import UTC, datetime

import pytest

from nameko_services.domain import rules, templating

NOW = datetime(2026, 1, 27, 10, 30, tzinfo=UTC)
EVENT = {
    "id": 7,
    "trigger_id": 3,
    "trigger_ref": "webhook_pack.hook",
    "source": "webhook",
    "payload": {"severity": "high", "user_id": 12345, "tags": ["a", "b"],
                "metadata": {"source": "web"}},
}


class FakeDatastore:
    """Counts loads, so tests can see that the datastore is read lazily and once."""

    def __init__(self, values):
        self.values, self.loads = values, 0

    def __call__(self):
        self.loads += 1
        return self.values


def context(values=None):
    loader = FakeDatastore(values or {})
    return rules.criteria_context(EVENT, templating.DatastoreView(loader), NOW), loader


def test_context_offers_trigger_event_datastore_and_now():
    ctx, _ = context()
    assert ctx["trigger"] == {"data": EVENT["payload"], "id": 3, "ref": "webhook_pack.hook"}
    assert ctx["event"]["id"] == 7
    assert ctx["event"]["payload"] is EVENT["payload"]
    assert ctx["now"] == NOW


@pytest.mark.parametrize(
    "criteria",
    [None, "", "{{ trigger.data.severity == 'high' }}", "trigger.data.user_id > 100",
     "{{ event.id == 7 and trigger.ref == 'webhook_pack.hook' }}", "{{ now.year == 2026 }}"],
)
def test_true_or_empty_criteria_match(criteria):
    ctx, _ = context()
    assert rules.evaluate(criteria, None, ctx).matched is True


@pytest.mark.parametrize(
    "criteria", ["{{ trigger.data.severity == 'low' }}", "trigger.data.missing", "{{ false }}"]
)
def test_false_criteria_do_not_match(criteria):
    ctx, _ = context()
    assert rules.evaluate(criteria, None, ctx).matched is False


def test_an_evaluation_error_is_no_match_with_the_error_recorded():
    ctx, _ = context()
    decision = rules.evaluate("{{ trigger.data.user_id / 0 }}", None, ctx)
    assert decision.matched is False
    assert "ZeroDivisionError" in decision.error


def test_criteria_read_the_datastore_lazily_and_once():
    ctx, loader = context({"threshold": 5, "config.env": "prod"})
    assert rules.evaluate("{{ trigger.data.severity == 'high' }}", None, ctx).matched
    assert loader.loads == 0
    assert rules.evaluate("{{ datastore.threshold < 10 }}", None, ctx).matched
    assert rules.evaluate("{{ datastore.config.env == 'prod' }}", None, ctx).matched
    assert not rules.evaluate("{{ datastore.missing }}", None, ctx).matched
    assert loader.loads == 1


def test_lone_expressions_keep_their_json_type():
    ctx, _ = context({"limit": 3})
    got = rules.render_parameters(
        {
            "user": "{{ trigger.data.user_id }}",
            "tags": "{{ trigger.data.tags }}",
            "meta": "{{ trigger.data.metadata }}",
            "limit": "{{ datastore.limit }}",
            "missing": "{{ trigger.data.nope }}",
            "text": "user {{ trigger.data.user_id }} from {{ trigger.data.metadata.source }}",
            "literal": 42,
            "nested": {"list": ["{{ event.id }}", "x"]},
        },
        ctx,
    )
    assert got == {
        "user": 12345,
        "tags": ["a", "b"],
        "meta": {"source": "web"},
        "limit": 3,
        "missing": None,
        "text": "user 12345 from web",
        "literal": 42,
        "nested": {"list": [7, "x"]},
    }


def test_rendered_values_are_json_even_for_now():
    ctx, _ = context()
    assert rules.render_parameters({"at": "{{ now }}"}, ctx) == {"at": NOW.isoformat()}


def test_empty_parameters_render_to_an_empty_dict():
    ctx, _ = context()
    assert rules.render_parameters(None, ctx) == {}


def test_a_bad_parameter_template_raises_template_error():
    ctx, _ = context()
    with pytest.raises(templating.TemplateError):
        rules.render_parameters({"x": "{{ trigger.data.user_id / 0 }}"}, ctx)


# rules.evaluate: the one decision the executor acts on and a dry-run shows.

def test_a_match_renders_the_parameters_and_keeps_the_criteria_value():
    ctx, _ = context()
    verdict = rules.evaluate("{{ trigger.data.user_id > 100 }}",
                             {"who": "{{ trigger.data.user_id }}", "n": 1}, ctx)
    assert verdict == rules.Evaluation(matched=True, value=True,
                                       parameters={"who": 12345, "n": 1})


def test_no_match_says_what_the_criteria_came_to_and_renders_nothing():
    ctx, loader = context({"x": 1})
    verdict = rules.evaluate("{{ trigger.data.severity == 'low' }}", {"x": "{{ datastore.x }}"},
                             ctx)
    assert verdict == rules.Evaluation(matched=False, value=False)
    falsy = rules.evaluate("trigger.data.missing", {"x": "{{ datastore.x }}"}, ctx)
    assert falsy == rules.Evaluation(matched=False, value=None)
    assert loader.loads == 0  # the parameters were never rendered


def test_a_criteria_value_is_shown_as_json():
    ctx, _ = context()
    verdict = rules.evaluate("{{ now if false else [] }}", None, ctx)
    assert verdict == rules.Evaluation(matched=False, value=[])
    assert rules.evaluate("now", None, ctx).value == NOW.isoformat()


def test_empty_criteria_match_without_a_value():
    ctx, _ = context()
    assert rules.evaluate(None, None, ctx) == rules.Evaluation(matched=True, parameters={})
    assert rules.evaluate("  ", {"a": 1}, ctx) == rules.Evaluation(matched=True,
                                                                   parameters={"a": 1})


def test_a_criteria_error_is_no_match_with_the_error():
    ctx, _ = context()
    verdict = rules.evaluate("{{ trigger.data.user_id / 0 }}", {"a": 1}, ctx)
    assert verdict.matched is False and verdict.parameters is None
    assert "ZeroDivisionError" in verdict.error and "user_id / 0" in verdict.error


def test_a_parameter_that_does_not_render_is_a_match_with_the_template_error():
    ctx, _ = context()
    verdict = rules.evaluate("{{ true }}", {"ok": 1, "bad": "{{ trigger.data.user_id / 0 }}"},
                             ctx)
    assert verdict.matched is True and verdict.value is True
    assert verdict.parameters is None and verdict.error is None
    assert "ZeroDivisionError" in verdict.parameters_error
