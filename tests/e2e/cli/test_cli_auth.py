"""`attune login/whoami/logout/apikey`: tokens cached privately per URL and refreshed, API keys
through ATTUNE_TOKEN, logout revoking on the server."""

import json
import stat

from tests.support.e2e import PASSWORD, ApiClient


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_login_caches_the_tokens_privately_and_whoami_answers(cli, api):
    assert (mode(cli.credentials), mode(cli.credentials.parent)) == (0o600, 0o700)
    cached = json.loads(cli.credentials.read_text())
    assert cached["default"] == cli.url
    assert cached["servers"][cli.url]["username"] == api.user["username"]

    me = cli.json("whoami")
    assert (me["id"], me["username"], me["tenant_id"]) == (
        api.user["id"], api.user["username"], api.user["tenant_id"])
    shown = cli("whoami")
    assert shown.returncode == 0
    assert f"{api.user['username']} (user {api.user['id']}, role admin" in shown.stdout


def test_a_wrong_password_is_an_api_error_and_caches_nothing(make_cli, api):
    user = make_cli()
    done = user("login", "--url", user.url, "--username", api.user["username"],
                "--password-stdin", input="not-the-password\n")
    assert done.returncode == 2
    assert "(401 unauthorized)" in done.stderr
    assert not user.credentials.exists()


def test_an_expired_access_token_is_refreshed_with_the_refresh_token(cli):
    cached = json.loads(cli.credentials.read_text())
    entry = cached["servers"][cli.url]
    entry.update(access_token="expired-or-garbage", expires_at=0)
    cli.credentials.write_text(json.dumps(cached))

    assert cli("whoami").returncode == 0
    fresh = json.loads(cli.credentials.read_text())["servers"][cli.url]
    assert fresh["access_token"] != "expired-or-garbage"
    assert fresh["refresh_token"] != entry["refresh_token"]  # a new pair
    assert mode(cli.credentials) == 0o600


def test_logout_revokes_the_tokens_on_the_server_and_forgets_them(cli, platform):
    token = json.loads(cli.credentials.read_text())["servers"][cli.url]["access_token"]
    assert ApiClient(platform.api_url, token).get("/api/v1/me").status_code == 200
    done = cli("logout")
    assert done.returncode == 0, done.stderr
    assert ApiClient(platform.api_url, token).get("/api/v1/me").status_code == 401
    assert json.loads(cli.credentials.read_text())["servers"] == {}
    again = cli("whoami", ATTUNE_URL=cli.url)
    assert again.returncode == 2 and "not logged in" in again.stderr


def test_an_api_key_made_by_the_cli_works_as_attune_token_until_revoked(cli, make_cli, api):
    made = cli.json("apikey", "create", "--name", "ci", "--role", "viewer", "--expires", "1h")
    assert made["key"].startswith("atk_") and made["role"] == "viewer"
    listed = cli.json("apikey", "list")
    assert [(k["id"], k["prefix"]) for k in listed] == [(made["id"], made["key"][:12])]

    ci = make_cli("ci")  # no login of its own: only the environment
    me = ci.json("whoami", ATTUNE_URL=ci.url, ATTUNE_TOKEN=made["key"])
    assert me["username"] == api.user["username"]
    denied = ci("key", "set", "x", "1", ATTUNE_URL=ci.url, ATTUNE_TOKEN=made["key"])
    assert denied.returncode == 2 and "403 forbidden" in denied.stderr  # a viewer's key

    assert cli("apikey", "revoke", str(made["id"])).returncode == 0
    refused = ci("whoami", ATTUNE_URL=ci.url, ATTUNE_TOKEN=made["key"])
    assert refused.returncode == 2 and "401 unauthorized" in refused.stderr


def test_the_password_is_never_an_argument(make_cli, api):
    user = make_cli()
    argv = user.argv("login", "--url", user.url, "--username", api.user["username"],
                     "--password-stdin")
    assert PASSWORD not in " ".join(argv)  # the only way to give it is standard input
    done = user("login", "--url", user.url, "--username", api.user["username"],
                "--password", PASSWORD)
    assert done.returncode == 2 and "No such option '--password'" in done.stderr
