"""SensorService: entrypoints only (placeholder until the room is built)."""

from __future__ import annotations

from nameko.rpc import rpc

from ..extensions import PlatformProvider


class SensorService:
    """TODO: fill in."""

    name = "sensor"

    platform = PlatformProvider()

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok"}
