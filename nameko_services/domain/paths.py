"""Where the project lives: the root that relative paths of the settings start from.

Here, in the domain, because the domain's settings need it and the domain imports nothing of
the services' layer; `nameko_services.config` re-exports it for the command and the tests."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
