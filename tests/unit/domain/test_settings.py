"""Settings.from_mapping fails at start-up naming the bad key."""

import pytest

from nameko_services.config import PROJECT_ROOT, load_config
from nameko_services.domain.crypto import new_key_spec
from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import SandboxSettings, Settings


def base():
    return {"AMQP_URI": "amqp://x", "ATTUNE": {
        "database_url": "postgresql://x", "jwt_secret": "j" * 40,
        "encryption_keys": new_key_spec("k1"), "worker": {"max_output_size_bytes": 3}}}


def test_a_good_mapping_gives_typed_settings():
    settings = Settings.from_mapping(base())
    assert settings.worker.max_output_size_bytes == 3 and settings.active_key_id == "k1"
    assert settings.api_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize("key", ["database_url", "jwt_secret", "encryption_keys"])
def test_missing_keys_are_named(key):
    cfg = base()
    cfg["ATTUNE"][key] = None
    with pytest.raises(ConfigurationError, match=key):
        Settings.from_mapping(cfg)


def test_short_jwt_secrets_and_unknown_worker_keys_are_refused():
    cfg = base()
    cfg["ATTUNE"]["jwt_secret"] = "short"
    with pytest.raises(ConfigurationError, match="jwt_secret"):
        Settings.from_mapping(cfg)
    cfg = base()
    cfg["ATTUNE"]["worker"]["bogus"] = 1
    with pytest.raises(ConfigurationError, match="bogus"):
        Settings.from_mapping(cfg)


def test_the_worker_has_no_concurrency_key_of_its_own():
    """How many runs a worker takes at once is nameko's max_workers; the key went unused."""
    cfg = base()
    cfg["ATTUNE"]["worker"]["concurrency"] = 8
    with pytest.raises(ConfigurationError, match="concurrency"):
        Settings.from_mapping(cfg)


def test_the_supervisor_block_gives_replicas_restart_and_backoff():
    assert dict(Settings.from_mapping(base()).supervisor.replicas) == {
        "executor": 1, "worker": 1, "sensor": 1, "notifier": 1}
    cfg = base()
    cfg["ATTUNE"]["supervisor"] = {"replicas": {"worker": "3", "sensor": 2}, "restart": "false",
                                   "max_backoff_seconds": 2}
    supervisor = Settings.from_mapping(cfg).supervisor
    assert dict(supervisor.replicas) == {"executor": 1, "worker": 3, "sensor": 2, "notifier": 1}
    assert supervisor.restart is False and supervisor.max_backoff_seconds == 2.0
    assert supervisor.metrics_port is None  # not served unless asked
    cfg["ATTUNE"]["supervisor"] = {"metrics_port": "9464"}
    assert Settings.from_mapping(cfg).supervisor.metrics_port == 9464
    cfg["ATTUNE"]["supervisor"] = {"metrics_port": ""}  # ${ATTUNE_METRICS_PORT:} unset
    assert Settings.from_mapping(cfg).supervisor.metrics_port is None


@pytest.mark.parametrize(("block", "named"), [
    ({"replicas": {"gateway": 2}}, r"ATTUNE.supervisor.replicas: \['gateway'\]"),
    ({"replicas": {"worker": 0}}, "ATTUNE.supervisor.replicas.worker must be a whole number"),
    ({"replicas": {"worker": 17}}, "ATTUNE.supervisor.replicas.worker must be a whole number"),
    ({"replicas": [1]}, "ATTUNE.supervisor.replicas must map"),
    ({"max_backoff_seconds": 0}, "max_backoff_seconds"),
    ({"metrics_port": "http"}, "ATTUNE.supervisor.metrics_port must be a port number"),
    ({"metrics_port": 70000}, "ATTUNE.supervisor.metrics_port must be a port number"),
    ({"restarts": True}, r"unknown key\(s\) in ATTUNE.supervisor: \['restarts'\]"),
])
def test_bad_supervisor_blocks_fail_naming_the_key(block, named):
    cfg = base()
    cfg["ATTUNE"]["supervisor"] = block
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_mapping(cfg)


def test_the_http_runner_allow_list_is_parsed_into_the_destination_policy():
    assert Settings.from_mapping(base()).http_runner.policy.allow == ()  # refuse by default
    cfg = base()
    cfg["ATTUNE"]["http_runner"] = {"allow": ["127.0.0.1:18099", "10.20.0.0/16"]}
    policy = Settings.from_mapping(cfg).http_runner.policy
    assert policy.refusal("127.0.0.1", 18099) is None
    assert policy.refusal("10.20.1.2", 443) is None
    assert policy.refusal("10.21.1.2", 443) == "a private address"


@pytest.mark.parametrize(("block", "named"), [
    ({"allow": ["internal.example.com"]}, "ATTUNE.http_runner.allow: 'internal.example.com'"),
    ({"allow": ["127.0.0.1:99999"]}, "ATTUNE.http_runner.allow: '127.0.0.1:99999'"),
    ({"allow": "10.0.0.0/8"}, "ATTUNE.http_runner.allow must be a list"),
    ({"allow": [10]}, "ATTUNE.http_runner.allow must be a list"),
    ({"allowed": []}, r"unknown key\(s\) in ATTUNE.http_runner: \['allowed'\]"),
])
def test_bad_http_runner_blocks_fail_at_start_up_naming_the_key(block, named):
    cfg = base()
    cfg["ATTUNE"]["http_runner"] = block
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_mapping(cfg)
def test_gateway_processes_default_to_one_and_take_a_whole_number_from_1_to_64():
    assert Settings.from_mapping(base()).gateway.processes == 1
    for given, wanted in ((1, 1), ("4", 4), (" 64 ", 64)):
        cfg = base()
        cfg["ATTUNE"]["gateway"] = {"processes": given}
        assert Settings.from_mapping(cfg).gateway.processes == wanted


@pytest.mark.parametrize(("block", "named"), [
    ({"processes": 0}, "ATTUNE.gateway.processes must be a whole number from 1 to 64, not 0"),
    ({"processes": 65}, "not 65"),
    ({"processes": "two"}, "not 'two'"),
    ({"processes": 1.5}, "not 1.5"),
    ({"processes": True}, "not True"),
    ({"workers": 2}, r"unknown key\(s\) in ATTUNE.gateway: \['workers'\]"),
])
def test_bad_gateway_blocks_fail_at_start_up_naming_the_key(block, named):
    cfg = base()
    cfg["ATTUNE"]["gateway"] = block
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_mapping(cfg)


def test_registration_is_closed_unless_the_configuration_opens_it():
    assert Settings.from_mapping(base()).auth.registration == "closed"
    for given, wanted in (("open", True), ("closed", False), (" Open ", True)):
        cfg = base()
        cfg["ATTUNE"]["auth"] = {"registration": given}
        assert Settings.from_mapping(cfg).auth.registration_open is wanted


@pytest.mark.parametrize("value", ["yes", "", None, True, "opened"])
def test_a_registration_other_than_open_or_closed_fails_naming_the_key(value):
    cfg = base()
    cfg["ATTUNE"]["auth"] = {"registration": value}
    with pytest.raises(ConfigurationError, match=r"ATTUNE\.auth\.registration must be 'open' or "
                                                 r"'closed'"):
        Settings.from_mapping(cfg)


def test_unknown_keys_under_auth_are_refused():
    cfg = base()
    cfg["ATTUNE"]["auth"] = {"registration": "open", "signup": "open"}
    with pytest.raises(ConfigurationError, match=r"ATTUNE\.auth: \['signup'\]"):
        Settings.from_mapping(cfg)


def test_nameko_yaml_ships_closed_and_the_e2e_configuration_open(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTUNE_REGISTRATION", raising=False)
    monkeypatch.delenv("ATTUNE_SANDBOX_NETWORK", raising=False)
    monkeypatch.delenv("ATTUNE_GATEWAY_PROCESSES", raising=False)
    keys = tmp_path / "keys.env"
    keys.write_text(f"ATTUNE_JWT_SECRET={'j' * 40}\nATTUNE_ENCRYPTION_KEYS={new_key_spec('k1')}\n")
    monkeypatch.setenv("ATTUNE_KEYS_FILE", str(keys))
    shipped = Settings.from_mapping(load_config(PROJECT_ROOT / "nameko.yaml"))
    assert shipped.auth.registration == "closed"
    assert shipped.sandbox == SandboxSettings()  # the file says what the code defaults to
    assert shipped.rate_limit.admin.burst > shipped.rate_limit.user.burst
    assert shipped.gateway.processes == 1
    e2e = Settings.from_mapping(load_config(PROJECT_ROOT / "config.e2e.yaml"))
    assert e2e.auth.registration == "open" and e2e.gateway.processes == 1
    monkeypatch.setenv("ATTUNE_REGISTRATION", "open")
    monkeypatch.setenv("ATTUNE_GATEWAY_PROCESSES", "3")
    overridden = Settings.from_mapping(load_config(PROJECT_ROOT / "nameko.yaml"))
    assert overridden.auth.registration_open and overridden.gateway.processes == 3
def test_pack_paths_are_resolved_against_the_project_root_or_taken_as_absolute(tmp_path):
    from nameko_services.config import PROJECT_ROOT
    from nameko_services.domain.settings import PackSettings

    cfg = base()
    cfg["ATTUNE"]["packs"] = {"allowed_paths": ["packs", str(tmp_path / "a" / ".." / "b")]}
    settings = Settings.from_mapping(cfg)
    assert settings.packs.allowed_paths == (PROJECT_ROOT / "packs", tmp_path.resolve() / "b")
    assert Settings.from_mapping(base()).packs == PackSettings(allowed_paths=())


@pytest.mark.parametrize("packs, says", [
    ({"allowed_paths": "packs"}, "allowed_paths"),
    ({"allowed_paths": ["packs", 3]}, "allowed_paths"),
    ({"allowed_paths": [""]}, "allowed_paths"),
    ({"allowed_path": ["packs"]}, "allowed_path"),
])
def test_a_bad_pack_allow_list_fails_at_start_up_naming_the_key(packs, says):
    cfg = base()
    cfg["ATTUNE"]["packs"] = packs
    with pytest.raises(ConfigurationError, match=f"ATTUNE.packs.*{says}|{says}.*ATTUNE.packs"):
        Settings.from_mapping(cfg)


def test_a_path_is_allowed_only_inside_an_allowed_folder_after_resolving_links(tmp_path):
    from nameko_services.domain.settings import PackSettings

    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "pack").mkdir(parents=True)
    outside.mkdir()
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    (tmp_path / "way_in").symlink_to(allowed / "pack", target_is_directory=True)
    packs = PackSettings.from_mapping({"allowed_paths": [str(allowed)]}, root=tmp_path)
    assert packs.allows(allowed / "pack") and packs.allows(allowed)
    assert packs.allows(tmp_path / "way_in")  # a link from elsewhere into an allowed folder
    assert packs.allows(allowed / "not-yet-there")
    assert not packs.allows(allowed / "escape")
    assert not packs.allows(allowed / "escape" / "deeper")
    assert not packs.allows(allowed / ".." / "outside")
    assert not packs.allows(str(allowed) + "-sibling")  # a prefix is not a parent
    assert not packs.allows(outside)
    assert packs.allows(outside, outside)  # `also`: e.g. the tenant's own upload folder
    relative = PackSettings.from_mapping({"allowed_paths": ["allowed"]}, root=tmp_path)
    assert relative.allowed_paths == (allowed.resolve(),)


def test_the_api_block_bounds_synchronous_runs():
    cfg = base()
    cfg["ATTUNE"]["api"] = {"max_wait_seconds": "30", "max_waiters": 200,
                            "tenant_max_waiters": 20}
    api = Settings.from_mapping(cfg).api
    assert (api.max_wait_seconds, api.max_waiters, api.tenant_max_waiters) == (30.0, 200, 20)
    assert Settings.from_mapping(base()).api.max_wait_seconds == 60.0


@pytest.mark.parametrize("block, named", [
    ({"max_wait_seconds": 0}, "ATTUNE.api.max_wait_seconds"),
    ({"max_wait_seconds": "soon"}, "ATTUNE.api.max_wait_seconds"),
    ({"max_waiters": 1001}, "ATTUNE.api.max_waiters"),  # half the server's greenthreads at most
    ({"max_waiters": 2.5}, "ATTUNE.api.max_waiters"),
    ({"max_waiters": 10, "tenant_max_waiters": 11}, "ATTUNE.api.tenant_max_waiters"),
    ({"max_wait": 10}, "ATTUNE.api"),
])
def test_a_bad_api_block_fails_at_start_up_naming_the_key(block, named):
    cfg = base()
    cfg["ATTUNE"]["api"] = block
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        Settings.from_mapping(cfg)
