"""Settings.from_mapping fails at start-up naming the bad key."""

import pytest

from nameko_services.domain.crypto import new_key_spec
from nameko_services.domain.errors import ConfigurationError
from nameko_services.domain.settings import Settings


def base():
    return {"AMQP_URI": "amqp://x", "ATTUNE": {
        "database_url": "postgresql://x", "jwt_secret": "j" * 40,
        "encryption_keys": new_key_spec("k1"), "worker": {"concurrency": 3}}}


def test_a_good_mapping_gives_typed_settings():
    settings = Settings.from_mapping(base())
    assert settings.worker.concurrency == 3 and settings.active_key_id == "k1"
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
