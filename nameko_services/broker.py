"""The work queues on the broker and how deep they are: `/metrics` (gateway) and the executor's
operator `stats()` read the same numbers through these two functions.

The queue names come from the services' own entrypoint declarations, looked up by name at run
time (importlib): this module reads those declarations and nothing else of the roles, so it
imports none of them (docs/architecture.md "Layers").
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging

from kombu import Connection

from .domain import messages as m

log = logging.getLogger(__name__)

SERVICES = (m.EXECUTOR, m.WORKER, m.SENSOR, m.NOTIFIER)
BROKER_TIMEOUT_SECONDS = 2.0


@functools.cache
def work_queues() -> tuple[str, ...]:
    """Durable queues the services consume: `rpc-<service>` and one per service-pool event
    handler (nameko's naming), read from the services' own entrypoint declarations."""
    names = []
    for service in SERVICES:
        module = importlib.import_module(f"nameko_services.{service}.service")
        cls = getattr(module, f"{service.capitalize()}Service")
        names.append(f"rpc-{cls.name}")
        for attr in sorted(vars(cls)):
            for entry in getattr(getattr(cls, attr), "nameko_entrypoints", ()):
                if getattr(entry, "handler_type", None) == "service_pool":
                    names.append(f"evt-{entry.source_service}-{entry.event_type}--{cls.name}.{attr}")
    return tuple(names)


def queue_depths(amqp_uri: str, queues: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """queue → (ready messages, consumers); a queue that does not exist is left out."""
    found: dict[str, tuple[int, int]] = {}
    with Connection(amqp_uri, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                               timeout=BROKER_TIMEOUT_SECONDS)
        for queue in queues:
            channel = conn.channel()  # a failed passive declare closes its channel
            try:
                _, ready, consumers = channel.queue_declare(queue=queue, passive=True)
                found[queue] = (ready, consumers)
            except Exception as exc:
                log.debug("queue %s not declared yet (%s)", queue, type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):  # the broker may have closed it already
                    channel.close()
    return found
