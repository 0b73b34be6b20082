"""The only place that subclasses nameko classes: database and settings dependencies."""

from __future__ import annotations

from typing import Any

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from sqlalchemy import Engine

from .domain.crypto import Cipher
from .domain.db import make_engine
from .domain.settings import Settings


class Platform:
    """What a service worker gets: settings, the pooled engine and the cipher."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.cipher = Cipher(settings.encryption_keys, settings.active_key_id)


class PlatformProvider(DependencyProvider):
    """One engine per container (pool sized to max_workers), built from the container config."""

    def setup(self) -> None:
        config: dict[str, Any] = self.container.config
        settings = Settings.from_mapping(config)
        pool = int(config.get("max_workers", 10)) + 2
        self.platform = Platform(settings, make_engine(settings.database_url, pool_size=pool))

    def stop(self) -> None:
        self.platform.engine.dispose()

    def kill(self) -> None:
        self.platform.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> Platform:
        return self.platform


class Dispatcher(DependencyProvider):
    """Publish events after commit: `dispatch(event_type, payload, source=None)`.

    `source` names the exchange (`<source>.events`); it defaults to the service's own name.
    Execution news goes through the shared `executions` source so every consumer sees one
    ordered stream, whichever service made the transition.
    """

    def setup(self) -> None:
        from .green import Publisher

        self._publish = Publisher(self.container.config)

    def get_dependency(self, worker_ctx: Any):
        service_name = self.container.service_name
        publish = self._publish

        def dispatch(event_type: str, payload: dict[str, Any], source: str | None = None) -> None:
            publish(source or service_name, event_type, payload)

        return dispatch


class DrainingEventHandler(EventHandler):
    """An event handler that takes nothing new once its container starts stopping.

    nameko cancels the AMQP consumer when the container stops, but a message delivered in the
    moment before the cancel would still start a new worker. Here such a message goes straight
    back to the queue (for another consumer), while the handlers already running finish.
    """

    def setup(self) -> None:
        super().setup()
        self.draining = False

    def stop(self) -> None:
        self.draining = True
        super().stop()

    def handle_message(self, body: Any, message: Any) -> None:
        if self.draining:
            self.queue_consumer.requeue_message(message)
            return
        super().handle_message(body, message)


draining_event_handler = DrainingEventHandler.decorator
