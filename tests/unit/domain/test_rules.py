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
    assert rules.decide(criteria, ctx) == rules.Decision(matched=True)


@pytest.mark.parametrize(
    "criteria", ["{{ trigger.data.severity == 'low' }}", "trigger.data.missing", "{{ false }}"]
)
def test_false_criteria_do_not_match(criteria):
    ctx, _ = context()
    assert rules.decide(criteria, ctx) == rules.Decision(matched=False)


def test_an_evaluation_error_is_no_match_with_the_error_recorded():
    ctx, _ = context()
    decision = rules.decide("{{ trigger.data.user_id / 0 }}", ctx)
    assert decision.matched is False
    assert "ZeroDivisionError" in decision.error


def test_criteria_read_the_datastore_lazily_and_once():
    ctx, loader = context({"threshold": 5, "config.env": "prod"})
    assert rules.decide("{{ trigger.data.severity == 'high' }}", ctx).matched
    assert loader.loads == 0
    assert rules.decide("{{ datastore.threshold < 10 }}", ctx).matched
    assert rules.decide("{{ datastore.config.env == 'prod' }}", ctx).matched
    assert not rules.decide("{{ datastore.missing }}", ctx).matched
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
