"""Visible pack builds (issue 19, item 4): a tenant's WebSocket clients hear a pack's
environment build start and end (pack.env_building, then pack.env_ready or pack.env_failed,
with the elapsed time), and its log is kept, on success too, at GET
/api/v1/packs/<id>/environment."""

from __future__ import annotations

from tests.support.pack_envs import copy_fixture_pack, register_folder, wait_for_env

ENDS = ("pack.env_ready", "pack.env_failed")


def build_news(api, folder) -> tuple[dict, list[dict]]:
    """Register `folder` with a client subscribed to packs: the pack, and the pack
    notifications about it up to the build's end."""
    ws = api.notifications()
    try:
        ws.subscribe("pack")
        pack = register_folder(api, folder)
        news = ws.collect_until(lambda m: m["event"] in ENDS, timeout=240,
                                keep=lambda m: m.get("entity_type") == "pack"
                                and m["entity_id"] == pack["id"])
    finally:
        ws.close()
    return pack, news


def test_a_build_that_succeeds_is_announced_in_order_and_its_log_kept(api, tmp_path):
    pack, news = build_news(api, copy_fixture_pack("py_requests_228", tmp_path))
    assert [m["event"] for m in news] == ["pack.env_building", "pack.env_ready"]
    building, ready = (m["data"] for m in news)
    assert building == {"pack_id": pack["id"], "ref": "py_requests_228", "version": "1.0.0",
                        "status": "building", "elapsed_seconds": 0.0, "error": None}
    assert ready["status"] == "ready" and ready["error"] is None
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"
    env = api.data(api.get(f"/api/v1/packs/{pack['id']}/environment"), 200)
    assert env["status"] == "ready" and env["error"] is None
    assert env["log"].startswith("[python]\n") and "requests" in env["log"], env["log"]
    assert env["build_seconds"] == ready["elapsed_seconds"]
    assert env["built_at"] is not None


def test_a_build_that_fails_is_announced_with_its_error_and_its_log_kept(api, tmp_path):
    pack, news = build_news(api, copy_fixture_pack("py_broken_requirements", tmp_path))
    assert [m["event"] for m in news] == ["pack.env_building", "pack.env_failed"]
    failed = news[-1]["data"]
    assert failed["status"] == "failed" and failed["error"].startswith("pip install"), failed
    env = api.data(api.get(f"/api/v1/packs/{pack['id']}/environment"), 200)
    assert env["status"] == "failed"
    assert env["log"] == env["error"] and failed["error"] in env["log"]


def test_another_tenant_neither_hears_nor_reads_a_pack_build(api, make_api, tmp_path):
    other = make_api()
    ws = other.notifications()
    try:
        ws.subscribe("pack")
        pack, _ = build_news(api, copy_fixture_pack("py_requests_228", tmp_path))
        assert [m for m in ws.sync() if m.get("entity_type") == "pack"] == []
    finally:
        ws.close()
    assert other.get(f"/api/v1/packs/{pack['id']}/environment").status_code == 404
