"""Concurrency policies: what an action may declare, and the key each execution gets."""

import pytest

from nameko_services.domain import action_spec
from nameko_services.domain.concurrency import KeyRenderError, Policy, render_key
from nameko_services.domain.errors import ValidationError


def action(**policy):
    return {"name": "deploy", "runner_type": "shell", "code": "echo",
            "concurrency_policy": policy}


def fields_of(spec):
    with pytest.raises(ValidationError) as caught:
        action_spec.normalize(spec, pack_dir=None)
    return caught.value.fields


def test_a_policy_is_stored_with_its_defaults():
    values = action_spec.normalize(action(limit=2, key="{{ params.host }}"), pack_dir=None)
    assert values["concurrency_policy"] == {"limit": 2, "key": "{{ params.host }}",
                                            "overflow": "queue"}
    assert action_spec.normalize(action(limit=1, overflow="cancel"), pack_dir=None)[
        "concurrency_policy"] == {"limit": 1, "key": None, "overflow": "cancel"}
    plain = {"name": "a", "runner_type": "shell", "code": "x"}
    assert action_spec.normalize(plain, pack_dir=None)["concurrency_policy"] is None


@pytest.mark.parametrize(("policy", "field"), [
    ({}, "concurrency_policy.limit"),
    ({"limit": 0}, "concurrency_policy.limit"),
    ({"limit": 1.5}, "concurrency_policy.limit"),
    ({"limit": 1, "overflow": "drop"}, "concurrency_policy.overflow"),
    ({"limit": 1, "key": "{{ params.host "}, "concurrency_policy.key"),
    ({"limit": 1, "key": 7}, "concurrency_policy.key"),
    ({"limit": 1, "per": "host"}, "concurrency_policy.per"),
])
def test_a_bad_policy_is_named_by_its_path(policy, field):
    assert field in fields_of(action(**policy))


def test_a_policy_is_not_for_workflows_or_inquiries():
    assert "concurrency_policy" in fields_of({"name": "ask", "runner_type": "inquiry",
                                              "concurrency_policy": {"limit": 1}})
    assert "concurrency_policy" in fields_of({"name": "a", "runner_type": "shell", "code": "x",
                                              "concurrency_policy": 3})


def test_the_key_renders_over_the_parameters():
    policy = Policy(limit=1, key="{{ params.host }}-{{ region }}", overflow="queue")
    assert render_key(policy, {"host": "web1", "region": "eu"}) == "web1-eu"
    assert render_key(Policy(1, "{{ params.port }}", "queue"), {"port": 80}) == "80"
    assert render_key(Policy(1, None, "queue"), {"host": "web1"}) == ""


@pytest.mark.parametrize(("key", "reason"), [
    ("{{ params.host }}", "rendered to nothing"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ 'x' * 600 }}", "more than 500 characters"),
])
def test_a_key_that_cannot_render_says_why(key, reason):
    with pytest.raises(KeyRenderError, match=reason):
        render_key(Policy(1, key, "queue"), {})
