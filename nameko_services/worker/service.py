"""WorkerService: entrypoints only. The work lives in execution.py, preparation.py, runtime.py."""

from __future__ import annotations

from typing import Any

from runners import forkserver

from ..domain import messages, sandboxing
from ..extensions import (
    Dispatcher,
    MessageContext,
    PackCachePruner,
    PlatformProvider,
    draining_event_handler,
    event_handler,
    rpc,
)
from . import execution, pack_environments
from .pack_environments import PackEnvironmentBuilder
from .runtime import WorkerRuntime


class WorkerService:
    """Runs scheduled executions through the runner registry and reports the outcome.

    nameko's `max_workers` bounds how many executions run at once in one process; run more
    processes to scale (competing consumers of the same queue).
    """

    name = "worker"

    platform = PlatformProvider()
    context = MessageContext()  # logs and spans in the context of the message handled
    dispatch = Dispatcher()
    runtime = WorkerRuntime()
    environments = PackEnvironmentBuilder()  # at start: builds packs still marked `building`
    pack_cache = PackCachePruner()  # at start and every 10 min: unused pack versions go

    @draining_event_handler(messages.EXECUTOR, messages.EXECUTION_SCHEDULED, prioritised=True)
    def on_execution_scheduled(self, payload: dict[str, Any]) -> None:
        """Claim scheduled→running, run, record; a redelivered message finds nothing to claim."""
        execution.handle_scheduled(self.platform, self.runtime, self.dispatch, payload)

    @event_handler(messages.GATEWAY, messages.PACK_CHANGED)
    def on_pack_changed(self, payload: dict[str, Any]) -> None:
        """A pack was registered or reloaded: build its virtualenv / node_modules, record
        env_status (ready, or failed with the installer's error), announced to the tenant."""
        pack_environments.on_pack_changed(self.platform.engine, self.platform.settings, payload,
                                          self.dispatch)

    @rpc
    def ping(self) -> dict[str, str]:
        """Health probe used by the gateway's /health."""
        return {"service": self.name, "status": "ok", "worker": self.runtime.name}

    @rpc
    def status(self) -> dict[str, Any]:
        """Operator view of the replica that answers (RPC goes to one worker process; call
        again to reach another): its runs in flight, its warm python servers, and the pack
        environment builds running on its host (docs/operations.md "nameko shell")."""
        return {
            "worker": self.runtime.name,
            "runs": sorted((slot.describe() for slot in list(self.runtime.slots.values())),
                           key=lambda run: run["execution_id"]),
            "fork_servers": forkserver.SERVERS.describe(),
            "environment_builds": sandboxing.pack_environments(
                self.platform.settings).building(),
        }
