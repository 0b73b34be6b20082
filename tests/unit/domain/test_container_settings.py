"""ATTUNE.container in nameko.yaml: parsed into the runner's ContainerPolicy, a bad value
fails at start-up naming the key."""

from __future__ import annotations

import pytest

from nameko_services.config import PROJECT_ROOT, load_config
from nameko_services.domain.crypto import new_key_spec
from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import Settings, parse_container
from runners.container_policy import ContainerPolicy


def test_without_the_block_the_policy_is_the_secure_default():
    assert parse_container({}) == ContainerPolicy()
    assert ContainerPolicy().user == "65534:65534" and not ContainerPolicy().allow_image_user


def test_every_key_is_read():
    policy = parse_container({"limits": {"memory": "512m", "cpus": 0.5},
                              "maximum": {"memory": "2g", "cpus": 2},
                              "user": "4000", "allow_image_user": True})
    assert policy == ContainerPolicy(memory="512m", cpus=0.5, max_memory="2g", max_cpus=2.0,
                                     user="4000:4000", allow_image_user=True)


@pytest.mark.parametrize("value", ["true", "True", "false"])
def test_allow_image_user_from_the_environment_is_text(value):
    assert parse_container({"allow_image_user": value}).allow_image_user is (
        value.lower() == "true")


@pytest.mark.parametrize(("block", "named"), [
    ({"maximum": {"memory": "lots"}}, r"ATTUNE.container.maximum.memory must be a size"),
    ({"limits": {"memory": "0m"}}, r"ATTUNE.container.limits.memory must be a size"),
    ({"maximum": {"cpus": 0}}, r"ATTUNE.container.maximum.cpus must be a number"),
    ({"maximum": {"cpus": "many"}}, r"ATTUNE.container.maximum.cpus must be a number"),
    ({"limits": {"cpus": True}}, r"ATTUNE.container.limits.cpus must be a number"),
    ({"maximum": {"swap": "1g"}}, r"unknown key\(s\) in ATTUNE.container.maximum: \['swap'\]"),
    ({"maximum": "4g"}, r"ATTUNE.container.maximum must be a mapping"),
    ({"limits": {"memory": "8g"}}, r"ATTUNE.container.limits exceed "
                                   r"ATTUNE.container.maximum: memory"),
    ({"limits": {"cpus": 3}, "maximum": {"cpus": 2}}, r"exceed ATTUNE.container.maximum: cpus"),
    ({"user": "0"}, r"ATTUNE.container.user must not be root"),
    ({"user": "1000:0"}, r"ATTUNE.container.user must not be root"),
    ({"user": "nobody"}, r"ATTUNE.container.user must be a numeric UID"),
    ({"allow_image_user": "yes"}, r"ATTUNE.container.allow_image_user must be true or false"),
    ({"image_user": True}, r"unknown key\(s\) in ATTUNE.container: \['image_user'\]"),
])
def test_a_bad_block_fails_at_start_up_naming_the_key(block, named):
    cfg = {"AMQP_URI": "amqp://x", "ATTUNE": {
        "database_url": "postgresql://x", "jwt_secret": "j" * 40,
        "encryption_keys": new_key_spec("k1"), "container": block}}
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_mapping(cfg)


def test_the_shipped_configurations_replace_the_image_user_and_allow_no_exception(
    monkeypatch
):
    monkeypatch.setenv("ATTUNE_JWT_SECRET", "j" * 40)
    monkeypatch.setenv("ATTUNE_ENCRYPTION_KEYS", new_key_spec("k1"))
    monkeypatch.delenv("ATTUNE_CONTAINER_ALLOW_IMAGE_USER", raising=False)
    for name in ("nameko.yaml", "config.e2e.yaml"):
        policy = Settings.from_mapping(load_config(PROJECT_ROOT / name)).container
        assert policy.user == "65534:65534" and not policy.allow_image_user, name
        assert (policy.memory, policy.max_memory, policy.max_cpus) == ("256m", "4g", 4.0), name
