"""The login cache: per URL, in $XDG_CONFIG_HOME/attune, the folder 700 and the file 600."""

import stat

from client.credentials import CredentialStore, config_dir


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_lives_under_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg" / "attune"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "attune"


def test_tokens_are_kept_per_url_privately_and_forgotten(tmp_path):
    folder = tmp_path / "attune"
    folder.mkdir(mode=0o755)  # made looser by someone else: tightened on the first write
    store = CredentialStore(folder)
    assert store.default_url() is None and store.get("http://a") is None
    store.put("http://a", {"access_token": "A"})
    store.put("http://b", {"access_token": "B"})
    assert (mode(folder), mode(store.path)) == (0o700, 0o600)
    assert store.get("http://a") == {"access_token": "A"}
    assert store.default_url() == "http://b"  # the last login
    assert store.forget("http://b") is True
    assert store.default_url() == "http://a" and store.get("http://b") is None
    assert store.forget("http://b") is False
    assert [p.name for p in folder.iterdir()] == ["credentials.json"]  # no temporary left
