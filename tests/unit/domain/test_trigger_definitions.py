"""Trigger definitions: each type's parameters are checked and stored normalised."""

import pytest

from nameko_services.domain import triggers
from nameko_services.domain.errors import ValidationError


def test_an_interval_keeps_its_seconds():
    assert triggers.normalize({"name": "t", "type": "interval", "parameters": {"seconds": 2.5}})[
        "parameters"] == {"seconds": 2.5}


def test_a_cron_expression_has_its_whitespace_collapsed_and_utc_by_default():
    values = triggers.normalize({"name": "t", "type": "cron",
                                 "parameters": {"expression": " */5  * * * * * "}})
    assert values["parameters"] == {"expression": "*/5 * * * * *", "timezone": "UTC"}


def test_a_date_with_an_offset_is_stored_in_utc_with_milliseconds():
    values = triggers.normalize({"name": "t", "type": "date",
                                 "parameters": {"date": "2026-03-01T00:00:00.5-05:00"}})
    assert values["parameters"] == {"date": "2026-03-01T05:00:00.500Z"}


def test_a_sub_millisecond_interval_is_refused_by_the_schedulers_own_parser():
    with pytest.raises(ValidationError) as caught:
        triggers.normalize({"name": "t", "type": "interval", "parameters": {"seconds": 1e-6}})
    assert "parameters.seconds" in caught.value.fields


def test_missing_parameters_of_a_webhook_mean_none():
    assert triggers.normalize({"name": "t", "type": "webhook"})["parameters"] == {}


@pytest.mark.parametrize("spec, field", [
    ({"type": "webhook"}, "name"),
    ({"name": "t"}, "type"),
    ({"name": "t", "type": "interval", "parameters": {"seconds": True}}, "parameters.seconds"),
    ({"name": "t", "type": "cron", "parameters": {"expression": "* * * * *", "timezone": 3}},
     "parameters.timezone"),
    ({"name": "t", "type": "webhook", "description": 7}, "description"),
])
def test_bad_definitions_name_the_field(spec, field):
    with pytest.raises(ValidationError) as caught:
        triggers.normalize(spec)
    assert field in caught.value.fields


def test_only_the_owning_tenant_sees_a_webhook_token():
    from datetime import UTC, datetime

    row = {"id": 3, "ref": "p.hook", "pack_id": 1, "name": "hook", "type": "webhook",
           "parameters": {}, "description": "", "status": "active", "tenant_id": 5,
           "webhook_token": "tok", "created_at": datetime.now(UTC),
           "updated_at": datetime.now(UTC)}
    assert triggers.to_api(row, 5)["webhook_token"] == "tok"
    assert "webhook_token" not in triggers.to_api(row, 6)
    assert "webhook_token" not in triggers.to_api(row, 5, reveal_token=False)
    assert triggers.to_api(row, 6)["webhook_url"] == "/api/v1/webhooks/3"


def test_an_execution_trigger_keeps_its_filters_and_needs_none():
    assert triggers.normalize({"name": "t", "type": "execution"})["parameters"] == {}
    values = triggers.normalize({"name": "t", "type": "execution", "parameters": {
        "action": " ops.deploy ", "pack": "ops", "status": ["failed", "canceled", "failed"]}})
    assert values["parameters"] == {"action": "ops.deploy", "pack": "ops",
                                    "status": ["failed", "canceled"]}


@pytest.mark.parametrize("parameters, field", [
    ({"status": ["running"]}, "parameters.status"),
    ({"status": []}, "parameters.status"),
    ({"status": "failed"}, "parameters.status"),
    ({"action": ""}, "parameters.action"),
    ({"pack": 3}, "parameters.pack"),
    ({"rule": "x"}, "parameters.rule"),
])
def test_an_execution_trigger_refuses_bad_filters_naming_them(parameters, field):
    with pytest.raises(ValidationError) as caught:
        triggers.normalize({"name": "t", "type": "execution", "parameters": parameters})
    assert field in caught.value.fields
