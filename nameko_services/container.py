"""The services' nameko container: its config completed from the keys file before anything
connects, so `nameko run` starts a service whose keys are in no environment."""

from __future__ import annotations

from typing import Any

from nameko.containers import ServiceContainer

from .config import read_keys, with_keys


class KeyedContainer(ServiceContainer):  # type: ignore[misc]
    """nameko's ServiceContainer, named by SERVICE_CONTAINER_CLS in nameko.yaml."""

    def __init__(self, service_cls: type, config: dict[str, Any]) -> None:
        super().__init__(service_cls, with_keys(config, read_keys()))
