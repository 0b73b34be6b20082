"""A stand-in for the gateway's datastore and webhook routes, for SDK and worker tests."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

PREFIX = "/api/v1/datastore/"
WEBHOOKS = "/api/v1/webhooks/"


@contextlib.contextmanager
def datastore_stub(socket_path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Serve GET/DELETE /api/v1/datastore/{key} and POST /api/v1/datastore from a dict, on
    127.0.0.1 and, given `socket_path`, on that unix socket too (the one sandboxes see).

    Records (method, path, headers, body) in `calls`; the key "forbidden" answers 403.
    """
    store: dict[str, Any] = {}
    calls: list[tuple[str, str, dict[str, str], Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            calls.append((self.command, self.path, dict(self.headers), body))
            return body

        def do_GET(self):
            self._record()
            key = unquote(self.path[len(PREFIX):])
            if key in store:
                self._reply(200, {"data": {"key": key, "value": store[key]}})
            else:
                self._reply(404, {"error": {"code": "not_found", "message": "nope"}})

        def do_POST(self):
            body = self._record()
            if self.path.startswith(WEBHOOKS):
                trigger = int(self.path[len(WEBHOOKS):])
                self._reply(202, {"data": {"event_id": 1000 + trigger, "trigger_id": trigger}})
                return
            if body["key"] == "forbidden":
                self._reply(403, {"error": {"code": "forbidden", "message": "no way"}})
                return
            created = body["key"] not in store
            store[body["key"]] = body["value"]
            self._reply(201 if created else 200, {"data": {"key": body["key"]}})

        def do_DELETE(self):
            self._record()
            key = unquote(self.path[len(PREFIX):])
            if store.pop(key, None) is None:
                self._reply(404, {"error": {"code": "not_found", "message": "nope"}})
            else:
                self._reply(204)

    servers: list[socketserver.BaseServer] = [ThreadingHTTPServer(("127.0.0.1", 0), Handler)]
    if socket_path is not None:
        socket_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        socket_path.unlink(missing_ok=True)
        servers.append(UnixHTTPServer(str(socket_path), Handler))
        socket_path.chmod(0o666)  # the sandbox's uid connects
    for server in servers:
        server.daemon_threads = True  # type: ignore[attr-defined]
        server.block_on_close = False  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = servers[0].server_address[1]  # type: ignore[index]
    try:
        yield {"url": f"http://127.0.0.1:{port}", "port": port, "socket": socket_path,
               "store": store, "calls": calls}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    """An HTTP server on a unix socket (no client address to log)."""
