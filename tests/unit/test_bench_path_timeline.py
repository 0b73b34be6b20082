"""bench/path_timeline.py's reading of a capture: which packets make one webhook's path."""

from bench.path_timeline import WHAT, Packet, paths


def packet(at, source, target, text):
    return Packet(at, source, target, len(text), text)


def test_a_path_runs_from_the_webhook_to_the_workers_claim():
    found = [
        packet(0.000, "client", "gateway", "POST /api/v1/webhooks/7 HTTP/1.1"),
        packet(0.002, "gateway", "postgresql", "INSERT INTO events (tenant_id"),
        packet(0.009, "executor", "postgresql", "WITH moved AS (UPDATE executions"),
        packet(0.015, "worker", "postgresql", "WITH moved AS (UPDATE executions"),
        packet(0.016, "worker", "postgresql", "SELECT actions.id"),
        packet(0.500, "client", "gateway", "POST /api/v1/webhooks/7 HTTP/1.1"),
        packet(0.502, "gateway", "postgresql", "INSERT INTO events (tenant_id"),
        packet(1.000, "client", "gateway", "POST /api/v1/webhooks/7 HTTP/1.1"),
        packet(1.012, "worker", "postgresql", "WITH moved AS (UPDATE executions"),
    ]
    found_paths = paths(found)
    # The second webhook never reached a worker before the third was sent: no path of its own.
    assert [[p.at for p in path] for path in found_paths] == [
        [0.000, 0.002, 0.009, 0.015], [1.000, 1.012]]


def test_packets_are_named_by_statement_routing_key_or_http_line():
    named = {text: WHAT.search(text).group(0) for text in (
        "POST /api/v1/webhooks/7 HTTP/1.1", "HTTP/1.1 202 Accepted", "BEGIN",
        "WITH claimed AS (UPDATE events", "SELECT triggers.id, triggers.tenant_id",
        "....gateway.events..event.created.....", "SELECT 1")}
    assert list(named.values()) == ["POST /api/v1/webhooks/7", "HTTP/1.1 202", "BEGIN",
                                    "WITH claimed", "SELECT triggers.id", "event.created",
                                    "SELECT 1"]
