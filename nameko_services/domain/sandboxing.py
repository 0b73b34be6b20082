"""Whose sandbox and what it shows: decided here once for actions, pack sensors and pack
environment builds (runners/sandbox.py makes it).

The owner is the tenant the code runs for (an execution's tenant; a pack sensor's or a pack
build's pack owner), 0 for system packs' sensors and builds. A sandbox shows its pack's folder
and environment read-only, and the network its pack asks for (pack.yaml `network:`, else
`ATTUNE.sandbox.network`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runners import environments
from runners.environments import Environments, PackEnvironment
from runners.sandbox import RUNTIME, Host, Limits, Sandbox, installation_of

from .settings import Settings

SYSTEM_OWNER = 0


def run_dir(settings: Settings) -> Path:
    """The run dir as an absolute path (sandboxes bind paths under it)."""
    return settings.run_dir.resolve()


def host(settings: Settings) -> Host:
    """This installation's sandbox state folder, the gateway's socket, the opened networks."""
    root = run_dir(settings)
    return Host(state_dir=root / "sandbox", api_socket=root / "api" / "api.sock",
                allowed_networks=settings.sandbox.allow_networks)


def code_dir(settings: Settings, owner: int) -> Path:
    """Where an owner's inline-code actions are written, one folder per run: the same folder
    for every run, so a warm server of the owner sees them all (and nothing of another)."""
    return run_dir(settings) / "sandbox" / "code" / str(owner)


def owner_of(tenant_id: int | None) -> int:
    return SYSTEM_OWNER if tenant_id is None else int(tenant_id)


def wants_network(settings: Settings, pack: Mapping[str, Any] | None) -> bool:
    """pack.yaml `network:` (outbound | none), else the installation's default."""
    meta = (pack or {}).get("meta") or {}
    return str(meta.get("network") or settings.sandbox.network) == "outbound"


def environment_paths(env: PackEnvironment | None) -> tuple[str, ...]:
    """The folders of a pack's environments (a virtualenv, the folder of node_modules)."""
    if env is None:
        return ()
    found = []
    if env.python is not None:
        found.append(str(env.python.parent.parent))
    if env.node_modules is not None:
        found.append(str(env.node_modules.parent))
    return tuple(found)


def _existing(paths: Iterable[Path | str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(p) for p in paths if p is not None and Path(p).exists()))


def for_action(settings: Settings, tenant_id: int, pack: Mapping[str, Any] | None,
               limits: Limits, folders: Iterable[Path | str | None]) -> Sandbox:
    """An action run for `tenant_id`: `folders` (its pack, its environments, its code)."""
    return Sandbox(host=host(settings), owner=owner_of(tenant_id), read_only=_existing(folders),
                   network=wants_network(settings, pack), limits=limits)


def for_sensor(settings: Settings, pack: Mapping[str, Any], pack_dir: str,
               env: PackEnvironment | None, python: str) -> Sandbox:
    """A pack sensor run by `python`: its pack's owner, folder and environment, the wrappers;
    no CPU time limit (it runs for as long as it is enabled)."""
    shown = [pack_dir, *environment_paths(env), *RUNTIME, *installation_of(python)]
    return Sandbox(host=host(settings), owner=owner_of(pack.get("tenant_id")),
                   read_only=_existing(shown), network=wants_network(settings, pack),
                   limits=dataclasses.replace(settings.sandbox.limits, cpu_seconds=None),
                   cwd=pack_dir)


def pack_environments(settings: Settings) -> Environments:
    """The pack environments of this host, built in sandboxes of their pack's owner with the
    operator's maximum limits and outbound network (installers fetch from registries)."""
    return environments.of_run_dir(run_dir(settings), host(settings), settings.sandbox.maximum)
