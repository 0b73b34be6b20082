"""T3.6 — a pack sensor watching a file: loaded at registration and reload, run in its own
process on its poll_interval, its payloads become events (source "sensor") that fire rules,
and a crashing sensor is restarted with its error shown by GET /api/v1/sensors. A pack with a
requirements.txt runs its sensors in its own virtualenv, as its actions.

A sensor runs in a sandbox that shows it its own pack folder (read-only: this host's copy of
the pack's stored content, packs.md "Where a pack's content lives") and no other file of the
host: the file it watches lives in the pack's data/ folder, named relative to it (a sensor's
working directory is its pack folder). The test writes that pack into a folder a tenant may
register by path (config.e2e.yaml ATTUNE.packs.allowed_paths: tests/fixtures/packs) and
reloads it after each change, so the sensor sees the new content."""

from __future__ import annotations

import contextlib
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.e2e import (
    FIXTURE_PACKS,
    ApiClient,
    unique_name,
    wait_for_execution,
    wait_until,
)
from tests.support.flows import list_all, make_rule
from tests.support.pack_envs import register_folder

# Packs written while a test runs, under an allowed folder (git ignores it).
LIVE_PACKS = FIXTURE_PACKS / "_live"

WATCH = '''
"""Emit the file's content whenever it differs from the last content seen."""


class FileWatch:
    def __init__(self, config):
        self.path = config["path"]
        self.last = config.get("baseline")

    def poll(self):
        try:
            with open(self.path) as f:
                content = f.read()
        except FileNotFoundError:
            return []
        if content == self.last:
            return []
        self.last = content
        return [{"path": self.path, "content": content, "version": VERSION}]


VERSION = 1
'''

TICK = '''
import time


class Tick:
    """Emits one tick per poll, stamped with the monotonic clock of the sensor process."""

    def __init__(self):
        self.n = 0

    def poll(self):
        self.n += 1
        return [{"tick": self.n, "at": time.monotonic()}]
'''

CRASH = '''
import os


class Crash:
    """Crashes while the flag file exists, else emits nothing."""

    def poll(self):
        if os.path.exists(self.config["flag"]):
            raise RuntimeError("sensor exploded on purpose")
        return []
'''


def pack_folder(root: Path, ref: str, description: str, triggers: list[str]) -> Path:
    """A pack folder with pack.yaml, its custom trigger types and an empty sensors/."""
    pack = root / ref
    (pack / "sensors").mkdir(parents=True)
    (pack / "triggers").mkdir()
    (pack / "pack.yaml").write_text(f"ref: {ref}\nversion: 1.0.0\ndescription: {description}\n")
    for name in triggers:
        (pack / "triggers" / f"{name}.yaml").write_text(
            f"name: {name}\ntype: custom\nparameters: {{}}\n")
    return pack


WATCHED, FLAG = "data/watched.txt", "data/crash.flag"  # relative to the pack folder


def write_pack(root: Path, ref: str) -> Path:
    """The file-sensor pack: `file_watch` watches WATCHED, `crash` fails while FLAG exists,
    `tick` counts its polls."""
    pack = pack_folder(root, ref, "file sensor", ["file_changed", "ticked"])
    (pack / "sensors" / "file_watch.py").write_text(WATCH)
    (pack / "sensors" / "file_watch.yaml").write_text(textwrap.dedent(f"""\
        name: file_watch
        entry_point: sensors/file_watch.py
        poll_interval: 0.5
        trigger_types: [{ref}.file_changed]
        config: {{path: "{WATCHED}", baseline: "v0"}}
    """))
    (pack / "sensors" / "tick.py").write_text(TICK)
    (pack / "sensors" / "tick.yaml").write_text(textwrap.dedent(f"""\
        name: tick
        entry_point: sensors/tick.py
        poll_interval: 1
        trigger_types: [{ref}.ticked]
    """))
    (pack / "sensors" / "crash.py").write_text(CRASH)
    (pack / "sensors" / "crash.yaml").write_text(textwrap.dedent(f"""\
        name: crash
        entry_point: sensors/crash.py
        poll_interval: 0.5
        trigger_types: [{ref}.file_changed]
        config: {{flag: "{FLAG}"}}
    """))
    return pack


def readable_by_anyone(folder: Path) -> None:
    """The sandbox's uid is not the test's: it must traverse and read the pack folder."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture
def live_pack(api: ApiClient) -> Iterator[Callable[[str], tuple[dict, Path, Path, Path]]]:
    """Factory: `live_pack(ref)` writes the file-sensor pack into LIVE_PACKS/<ref> (its
    watched file and crash flag in its data/ folder) and registers it by path; returns
    (pack, pack folder, watched file, flag file); `reload(api, pack)` after changing them.
    Afterwards the packs are deleted, so their sensors stop, then their folders."""
    made: list[tuple[dict, Path]] = []

    def make(ref: str) -> tuple[dict, Path, Path, Path]:
        LIVE_PACKS.mkdir(mode=0o755, exist_ok=True)
        pack_dir = write_pack(LIVE_PACKS, ref)
        watched, flag = pack_dir / WATCHED, pack_dir / FLAG
        watched.parent.mkdir()
        watched.write_text("v0")
        readable_by_anyone(pack_dir)
        try:
            pack = api.data(api.post("/api/v1/packs", json={"path": str(pack_dir)}), 201)
        except BaseException:
            shutil.rmtree(pack_dir, ignore_errors=True)
            raise
        made.append((pack, pack_dir))
        return pack, pack_dir, watched, flag

    yield make
    for pack, pack_dir in made:
        try:
            api.delete(f"/api/v1/packs/{pack['id']}")
        finally:
            shutil.rmtree(pack_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # only when no other test's pack is left in it
        LIVE_PACKS.rmdir()


def reload(api: ApiClient, pack: dict) -> dict:
    """Re-read the pack's folder as it is now (POST /api/v1/packs/{id}/reload)."""
    return api.data(api.post(f"/api/v1/packs/{pack['id']}/reload"), 200)


def sensor(api: ApiClient, ref: str) -> dict:
    return next(s for s in list_all(api, "/api/v1/sensors") if s["ref"] == ref)


def trigger_of(api: ApiClient, ref: str) -> dict:
    return next(t for t in list_all(api, "/api/v1/triggers") if t["ref"] == ref)


def sensor_events(api: ApiClient, trigger: dict) -> list[dict]:
    return sorted(list_all(api, "/api/v1/events", trigger_id=trigger["id"]),
                  key=lambda e: e["id"])


def test_a_file_sensor_fires_a_rule_with_its_payload_and_is_reloaded(api, live_pack):
    ref = unique_name("files").replace("-", "_")
    pack, pack_dir, watched, _ = live_pack(ref)
    assert sorted(pack["sensors"]) == sorted(f"{ref}.{n}" for n in ("crash", "file_watch", "tick"))
    changed = trigger_of(api, f"{ref}.file_changed")
    rule = make_rule(api, changed, "core.echo",
                     parameters={"message": "{{ trigger.data.content }}"})

    wait_until(lambda: sensor(api, f"{ref}.file_watch")["status"] == "running", timeout=30,
               message="the file sensor to run")
    watched.write_text("v1")
    reload(api, pack)

    event = wait_until(lambda: sensor_events(api, changed), timeout=30,
                       message="an event from the sensor")[0]
    assert event["source"] == "sensor"
    assert event["payload"] == {"path": WATCHED, "content": "v1", "version": 1}
    execution = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule["id"]),
                           timeout=30, message="the rule's execution")[0]
    assert execution["event_id"] == event["id"]
    done = wait_for_execution(api, execution["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["output"] == "v1"

    # Reload with new sensor code: the new process emits with the new version.
    (pack_dir / "sensors" / "file_watch.py").write_text(WATCH.replace("VERSION = 1",
                                                                      "VERSION = 2"))
    watched.write_text("v2")
    reload(api, pack)  # re-reads its folder

    def reloaded() -> list[dict]:
        return [e for e in sensor_events(api, changed) if e["payload"].get("version") == 2]

    event2 = wait_until(reloaded, timeout=30, interval=1.0,
                        message="an event from the reloaded sensor")[0]
    assert event2["payload"]["content"] == "v2"
    assert sensor(api, f"{ref}.file_watch")["status"] == "running"


def test_a_sensor_polls_on_its_interval(api, tmp_path):
    ref = unique_name("ticks").replace("-", "_")
    pack_dir = write_pack(tmp_path, ref)
    register_folder(api, pack_dir)
    ticked = trigger_of(api, f"{ref}.ticked")

    ticks = wait_until(lambda: [e["payload"] for e in sensor_events(api, ticked)][:4]
                       if len(sensor_events(api, ticked)) >= 4 else None,
                       timeout=30, message="four ticks")
    assert [t["tick"] for t in ticks] == [1, 2, 3, 4]  # one process, in order, none lost
    # Three intervals of 1 s: a sensor polled back-to-back would span milliseconds.
    span = ticks[3]["at"] - ticks[0]["at"]
    assert span >= 2.5, span


def test_a_crashing_sensor_is_restarted_with_its_error_shown(api, live_pack):
    ref = unique_name("crashy").replace("-", "_")
    pack, _, _, flag = live_pack(ref)
    name = f"{ref}.crash"
    wait_until(lambda: sensor(api, name)["status"] == "running", timeout=30,
               message="the sensor to run")
    assert sensor(api, name)["restarts"] == 0 and sensor(api, name)["last_error"] is None

    flag.write_text("boom")
    reload(api, pack)
    crashed = wait_until(lambda: (s := sensor(api, name))["restarts"] >= 2 and s,
                         timeout=30, message="two restarts")
    assert "sensor exploded on purpose" in crashed["last_error"]
    assert crashed["status"] in ("running", "restarting")

    flag.unlink()  # healthy again: it comes back and stays up
    reload(api, pack)
    wait_until(lambda: sensor(api, name)["status"] == "running", timeout=60,
               message="the sensor to run again")
    # The watcher of the same pack was never disturbed by its neighbour's crashes.
    assert sensor(api, f"{ref}.file_watch")["restarts"] == 0


VERSIONS = '''
import sys

import requests


class Versions:
    """Reports, once, which requests it imported and from which interpreter prefix."""

    def __init__(self):
        self.sent = False

    def poll(self):
        if self.sent:
            return []
        self.sent = True
        return [{"requests": requests.__version__, "prefix": sys.prefix}]
'''


def write_requirements_pack(root: Path, ref: str, requirement: str) -> Path:
    pack = pack_folder(root, ref, "pinned", ["seen"])
    (pack / "requirements.txt").write_text(requirement + "\n")
    (pack / "sensors" / "versions.py").write_text(VERSIONS)
    (pack / "sensors" / "versions.yaml").write_text(textwrap.dedent(f"""\
        name: versions
        entry_point: sensors/versions.py
        poll_interval: 0.5
        trigger_types: [{ref}.seen]
    """))
    return pack


def test_a_sensor_imports_its_packs_own_requirements(api, tmp_path):
    ref = unique_name("pinned_sensor").replace("-", "_")
    pack_dir = write_requirements_pack(tmp_path, ref, "requests==2.25.0")
    register_folder(api, pack_dir)
    seen = trigger_of(api, f"{ref}.seen")

    event = wait_until(lambda: sensor_events(api, seen), timeout=240,
                       message="the sensor's event (after the pack's pip install)")[0]
    # The platform's own interpreter has another requests: this one is the pack's pin.
    assert event["payload"]["requests"] == "2.25.0"
    assert "/envs/python/" in event["payload"]["prefix"]
    assert sensor(api, f"{ref}.versions")["status"] == "running"


def test_a_sensor_whose_requirements_fail_to_install_shows_pips_error(api, tmp_path):
    ref = unique_name("unbuildable_sensor").replace("-", "_")
    pack_dir = write_requirements_pack(tmp_path, ref, "attune-no-such-package-xyz==9.9.9")
    register_folder(api, pack_dir)

    failing = wait_until(lambda: (s := sensor(api, f"{ref}.versions"))["last_error"] and s,
                         timeout=240, message="the sensor's build error")
    assert "environment failed to build" in failing["last_error"]
    assert "attune-no-such-package-xyz" in failing["last_error"]
    assert failing["status"] == "restarting"
    assert sensor_events(api, trigger_of(api, f"{ref}.seen")) == []
