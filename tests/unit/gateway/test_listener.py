"""The API port's listener: Nagle's algorithm off for every connection it accepts."""

import socket
from types import SimpleNamespace

from gateway.serve import _port_listener


def test_accepted_connections_send_without_waiting_for_the_peers_ack():
    listener = _port_listener(SimpleNamespace(api_host="127.0.0.1", api_port=0))
    try:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        try:
            # a response's header and body writes must not wait for a delayed ACK (40 ms)
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            accepted.close()
            client.close()
    finally:
        listener.close()
