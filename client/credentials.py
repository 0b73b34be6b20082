"""The user's logins, cached per API URL in `$XDG_CONFIG_HOME/attune/credentials.json`
(`~/.config/attune/...` by default): the folder mode 700, the file mode 600, written whole
through a private temporary file so a crash never leaves half a file or a readable one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    """Where the CLI keeps its state (the XDG base directory convention)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "attune"


class CredentialStore:
    """`{"default": url, "servers": {url: {"username", "access_token", "refresh_token",
    "expires_at"}}}`; the default is the URL of the last login."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config_dir()
        self.path = self.folder / FILE_NAME

    def _read(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"default": None, "servers": {}}
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read {self.path}: {exc}; log in again after removing it"
                          ) from exc
        loaded.setdefault("servers", {})
        loaded.setdefault("default", None)
        return loaded

    def _write(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # also when it existed with a looser mode
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".credentials-")  # mode 600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def default_url(self) -> str | None:
        return self._read()["default"]

    def get(self, url: str) -> dict[str, Any] | None:
        return self._read()["servers"].get(url)

    def put(self, url: str, entry: dict[str, Any]) -> None:
        """Remember `url`'s tokens and make it the default."""
        state = self._read()
        state["servers"][url] = entry
        state["default"] = url
        self._write(state)

    def forget(self, url: str) -> bool:
        """Drop `url`'s tokens (and the default when it was that URL); False if there were none."""
        state = self._read()
        if state["servers"].pop(url, None) is None:
            return False
        if state["default"] == url:
            state["default"] = next(iter(state["servers"]), None)
        self._write(state)
        return True
