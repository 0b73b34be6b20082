"""The keys file completes every process's config by itself: no key travels in an environment,
and root's `attune up` hands the platform to an unprivileged service user."""

import os
import pwd
import stat
from pathlib import Path

import pytest

from nameko_services import cli
from nameko_services.config import load_config, read_keys, with_keys, with_password
from nameko_services.container import KeyedContainer

KEYS = {"ATTUNE_JWT_SECRET": "j" * 40, "ATTUNE_ENCRYPTION_KEYS": "k1:abc",
        "ATTUNE_DATABASE_PASSWORD": "db/pw:1", "ATTUNE_AMQP_PASSWORD": "mq@pw"}


def test_passwords_join_urls_that_name_a_user_and_carry_none():
    assert with_password("amqp://attune@127.0.0.1:5672/v", "mq@pw") == \
        "amqp://attune:mq%40pw@127.0.0.1:5672/v"
    assert with_password("postgresql+psycopg2://attune@h/db", "db/pw:1") == \
        "postgresql+psycopg2://attune:db%2Fpw%3A1@h/db"
    assert with_password("amqp://u:given@h/v", "other") == "amqp://u:given@h/v"
    assert with_password("amqp://h/v", "pw") == "amqp://h/v"
    assert with_password("amqp://attune@h/v", None) == "amqp://attune@h/v"


def test_a_config_is_completed_but_what_it_says_wins():
    config = {"AMQP_URI": "amqp://attune@h/v",
              "ATTUNE": {"database_url": "postgresql://attune@h/db", "jwt_secret": "given" * 8}}
    with_keys(config, KEYS)
    assert config["ATTUNE"]["jwt_secret"] == "given" * 8
    assert config["ATTUNE"]["encryption_keys"] == "k1:abc"
    assert config["ATTUNE"]["database_url"] == "postgresql://attune:db%2Fpw%3A1@h/db"
    assert config["AMQP_URI"] == "amqp://attune:mq%40pw@h/v"


def test_the_keys_file_is_read_by_the_loader_and_never_from_the_environment(tmp_path,
                                                                               monkeypatch):
    keys = tmp_path / "keys.env"
    keys.write_text("# comment\n" + "".join(f"{k}={v}\n" for k, v in KEYS.items()))
    monkeypatch.setenv("ATTUNE_KEYS_FILE", str(keys))
    monkeypatch.setenv("ATTUNE_JWT_SECRET", "from-the-environment-" * 3)
    config = load_config(Path(cli.PROJECT_ROOT) / "nameko.yaml")
    assert config["ATTUNE"]["jwt_secret"] == KEYS["ATTUNE_JWT_SECRET"]
    assert config["AMQP_URI"].startswith("amqp://attune:mq%40pw@")
    assert config["SERVICE_CONTAINER_CLS"] == "nameko_services.container.KeyedContainer"
    assert read_keys(tmp_path / "missing.env") == {}


def test_the_services_container_completes_its_config_from_the_keys_file(tmp_path, monkeypatch):
    keys = tmp_path / "keys.env"
    keys.write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()))
    monkeypatch.setenv("ATTUNE_KEYS_FILE", str(keys))

    class Service:
        name = "probe"

    container = KeyedContainer(Service, {"AMQP_URI": "amqp://attune@h/v", "ATTUNE": {}})
    assert container.config["AMQP_URI"] == "amqp://attune:mq%40pw@h/v"
    assert container.config["ATTUNE"]["encryption_keys"] == "k1:abc"


def test_keys_are_made_private_and_given_to_the_service_user(tmp_path):
    me = pwd.getpwuid(os.getuid())
    keys = cli.ensure_keys(tmp_path / "k" / "keys.env", me)
    made = read_keys(keys)
    assert set(made) == set(cli.KEY_MAKERS)
    assert len(made["ATTUNE_DATABASE_PASSWORD"]) >= 24
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and keys.stat().st_uid == me.pw_uid


def test_the_services_environment_carries_no_key(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTUNE_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("ATTUNE_DATABASE_PASSWORD", "pw")
    platform = cli.Platform(tmp_path / "nameko.yaml", {}, None, tmp_path / "run")  # type: ignore[arg-type]
    account = pwd.getpwuid(os.getuid())
    env = cli.service_environment(platform, account)
    assert "ATTUNE_JWT_SECRET" not in env and "ATTUNE_DATABASE_PASSWORD" not in env
    assert env["HOME"] == str(tmp_path / "run" / "home") and env["USER"] == account.pw_name


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the services as another user")
def test_root_never_runs_the_services_as_itself_and_names_a_missing_user():
    with pytest.raises(cli.CliError, match="does not exist"):
        cli.service_account("no-such-attune-user")
    with pytest.raises(cli.CliError, match="is root"):
        cli.service_account("root")


def test_a_folder_closed_to_the_service_user_is_named(tmp_path):
    nobody = pwd.getpwnam("nobody")
    closed = tmp_path / "closed"
    (closed / "inside").mkdir(parents=True)
    tmp_path.chmod(0o755)
    closed.chmod(0o700)
    with pytest.raises(cli.CliError, match=f"{closed} is closed to the service user"):
        cli.check_reachable(closed / "inside", nobody)
    closed.chmod(0o711)
    cli.check_reachable(closed / "inside", nobody)
