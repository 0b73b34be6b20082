"""The operator's rules for container actions (`ATTUNE.container` in nameko.yaml).

Kept apart from `runners/container.py` so the settings can be parsed without importing the
Docker client. `ContainerPolicy()` is the secure default the runner uses when nothing else is
configured: 256m and one CPU unless the action says otherwise, at most 4g and 4 CPUs, and the
container runs as uid/gid 65534 (nobody) whatever the image's USER says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"^([1-9][0-9]*)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_USER = re.compile(r"^([0-9]+)(?::([0-9]+))?$")
NOBODY = "65534:65534"


def memory_bytes(value: str | int) -> int:
    """Docker's memory size (`256m`, `1g`, or bytes as an int) in bytes; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("not a positive size")
        return value
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("not a size such as '256m'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def check_user(value: str) -> str:
    """A numeric `UID[:GID]` other than root (names would resolve through the image's own
    /etc/passwd, which the image's author controls); ValueError otherwise."""
    match = _USER.match(value.strip())
    if match is None:
        raise ValueError("must be a numeric UID or UID:GID such as '65534:65534'")
    uid, gid = match.group(1), match.group(2)
    if int(uid) == 0 or (gid is not None and int(gid) == 0):
        raise ValueError("must not be root (0); a pack keeps its image's user only through "
                         "allow_image_user")
    return f"{int(uid)}:{int(gid if gid is not None else uid)}"


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    """Defaults and maximum of `memory`/`cpus`, and the user containers run as.

    `memory`/`cpus` apply when an action's container_config does not say; an action asking
    for more than `max_memory`/`max_cpus` fails with `resource_limit` before a container is
    made. `user` replaces the image's USER unless the pack asks to keep it (pack.yaml
    `container: {image_user: true}`) and `allow_image_user` is true.
    """

    memory: str = "256m"
    cpus: float = 1.0
    max_memory: str = "4g"
    max_cpus: float = 4.0
    user: str = NOBODY
    allow_image_user: bool = False
