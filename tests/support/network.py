"""This machine's own addresses, an HTTP server that counts the connections it accepts (for the
http runner's destination tests: a refused destination must see no connection), and which
process serves a WebSocket."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


def own_addresses(version: int = 4) -> list[str]:
    """This machine's non-loopback addresses of one IP version (`ip -j addr`, else the host
    name's address), global scope only."""
    family = "inet" if version == 4 else "inet6"
    try:
        links = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                                          check=True, timeout=10).stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        links = []
    found = [info["local"] for link in links for info in link.get("addr_info", [])
             if info.get("family") == family and info.get("scope") == "global"]
    if not found and version == 4:
        with contextlib.suppress(OSError):
            found = [socket.gethostbyname(socket.gethostname())]
    return [a for a in found if not ipaddress.ip_address(a).is_loopback]


@dataclass
class CountingServer:
    """Where it listens and how many connections it has accepted (a refused run adds none)."""

    host: str
    port: int
    accepted: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def accepted_after_probe(self) -> int:
        """Connections accepted before a probe of our own, which is accepted after any a run
        left in the listen backlog (accepts are in order): an exact count, no sleeping."""
        before = len(self.accepted)
        assert requests.get(f"{self.url}/probe", timeout=10).json() == {"ok": True}
        assert len(self.accepted) == before + 1
        return before


@contextlib.contextmanager
def counting_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[CountingServer]:
    """An HTTP server on `host`: any path answers 200 {"ok": true}; `/redirect?to=URL` answers
    302 to URL. Every accepted connection is recorded before a byte is read."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            target = parse_qs(urlsplit(self.path).query).get("to")
            if self.path.startswith("/redirect") and target:
                self.send_response(302)
                self.send_header("Location", target[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        block_on_close = False

        def get_request(self) -> tuple[socket.socket, Any]:
            conn, peer = super().get_request()
            state.accepted.append(peer)
            return conn, peer

    httpd = Server((host, port), Handler)
    state = CountingServer(host, httpd.server_address[1])
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def server_of(feed: Any, port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server side of this WebSocket's TCP connection (from
    /proc/net/tcp and the processes' descriptors)."""
    client_port = feed.ws.sock.getsockname()[1]
    inodes = {line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
              if int(line.split()[1].split(":")[1], 16) == port
              and int(line.split()[2].split(":")[1], 16) == client_port}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None
