"""The operator's container policy (ATTUNE.container) applied to an action: defaults, the
maximum of memory/cpus, and the user containers run as (no engine needed)."""

from __future__ import annotations

import pytest

from runners.base import RunnerError
from runners.container import ContainerSpec
from runners.container_policy import ContainerPolicy, check_user, memory_bytes

POLICY = ContainerPolicy(memory="128m", cpus=0.5, max_memory="1g", max_cpus=2.0,
                         user="2000:3000")


def spec(make_request, write, policy=POLICY, keep_image_user=False, **config):
    entry = write("actions/job.py", "print(1)\n")
    return ContainerSpec.from_request(make_request(
        entry, runner_type="container", container_policy=policy,
        keep_image_user=keep_image_user,
        container_config={"image": "python:3.11-slim", **config}))


def test_an_action_that_says_nothing_gets_the_operators_defaults_and_user(make_request, write):
    s = spec(make_request, write)
    assert (s.memory, s.cpus, s.user) == ("128m", 0.5, "2000:3000")


def test_without_a_configured_policy_containers_run_as_nobody_with_256m(make_request, write):
    s = spec(make_request, write, policy=ContainerPolicy())
    assert (s.memory, s.cpus, s.user) == ("256m", 1.0, "65534:65534")


def test_an_action_may_ask_for_up_to_the_maximum(make_request, write):
    s = spec(make_request, write, memory="1g", cpus=2)
    assert (s.memory, s.cpus) == ("1g", 2.0)
    assert spec(make_request, write, memory=1024**3).memory == 1024**3


@pytest.mark.parametrize(("config", "says"), [
    ({"memory": "1025m"}, r"container_config.memory: 1025m is above the operator's maximum of "
                          r"1g \(ATTUNE.container.maximum.memory\)"),
    ({"memory": 1024**3 + 1}, r"container_config.memory: 1073741825 is above"),
    ({"memory": "2g"}, r"container_config.memory: 2g is above"),
    ({"cpus": 2.5}, r"container_config.cpus: 2.5 is above the operator's maximum of 2 "
                    r"\(ATTUNE.container.maximum.cpus\)"),
])
def test_asking_above_the_maximum_is_a_resource_limit_error(make_request, write, config, says):
    with pytest.raises(RunnerError, match=says) as caught:
        spec(make_request, write, **config)
    assert caught.value.error_type == "resource_limit"


def test_the_image_user_is_kept_only_when_the_pack_asks_and_the_operator_allows(
    make_request, write
):
    allowing = ContainerPolicy(allow_image_user=True)
    assert spec(make_request, write, policy=allowing).user == "65534:65534"  # pack did not ask
    assert spec(make_request, write, policy=allowing, keep_image_user=True).user is None


def test_a_pack_asking_for_its_image_user_without_the_operators_leave_is_refused(
    make_request, write
):
    with pytest.raises(RunnerError, match=r"container.image_user.*does not allow.*"
                                          r"ATTUNE.container.allow_image_user") as caught:
        spec(make_request, write, keep_image_user=True)
    assert caught.value.error_type == "image_user_refused"


@pytest.mark.parametrize(("size", "expected"), [
    ("1", 1), ("10b", 10), ("2k", 2048), ("256m", 256 * 1024**2), ("4G", 4 * 1024**3),
    (" 64m ", 64 * 1024**2), (512, 512),
])
def test_memory_sizes_are_read_as_docker_reads_them(size, expected):
    assert memory_bytes(size) == expected


@pytest.mark.parametrize("size", ["", "0", "0m", "-1m", "1.5g", "lots", "12t", 0, -5, True, None])
def test_what_is_not_a_size_is_refused(size):
    with pytest.raises(ValueError):
        memory_bytes(size)


@pytest.mark.parametrize(("given", "user"), [
    ("65534:65534", "65534:65534"), ("1000", "1000:1000"), (" 1001:2002 ", "1001:2002"),
])
def test_the_user_is_numeric_and_gets_a_group(given, user):
    assert check_user(given) == user


@pytest.mark.parametrize("given", ["0", "0:0", "1000:0", "0:1000", "nobody", "1000:staff", "",
                                   "-1", "1000:"])
def test_root_and_names_are_refused_as_the_user(given):
    with pytest.raises(ValueError):
        check_user(given)
