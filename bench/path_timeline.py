"""Where one webhook's time goes, hop by hop: the loopback captured while webhooks run one at a
time, each packet named by the process that sent it and what it carries.

`tcpdump` records the API port, PostgreSQL (5432) and RabbitMQ (5672) on `lo` while `--count`
webhooks are sent at `--rate` per second (low, so their paths do not overlap); `ss` names each
local port's process, and the platform's run dir names the services. For each webhook the
packets from its request to the worker's claim (the first `WITH moved` the worker sends after
it) are listed; the webhook whose claim took the median time is printed packet by packet: at
what millisecond, from which process, to which port, and what (a statement's first words, an
AMQP routing key, the HTTP request or answer). docs/performance.md "Round trips on the path"
reads one such timeline. Needs root and tcpdump (`apt-get install tcpdump`: a tool for this
bench, not something the platform uses). Usage:

    .venv/bin/python -m bench.path_timeline --run-dir .attune/dev --count 20 --rate 2
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .common import family, service_pids
from .flow import Sender, bench_rule, finished

PORTS = {"5432": "postgresql", "5672": "rabbitmq"}
HEADER = re.compile(r"^(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): .*length (\d+)")
WHAT = re.compile(
    r"(POST /\S+|HTTP/1\.1 \d+|BEGIN|COMMIT|ROLLBACK|SELECT 1\b|WITH \w+|INSERT INTO \w+"
    r"|UPDATE \w+|DELETE FROM \w+|SELECT \w+\.\w+|SET \w+"
    r"|\b(?:event|execution|rule|inquiry|notification|listeners)\.[a-z_]+\b)")


@dataclass
class Packet:
    at: float
    source: str
    target: str
    length: int
    text: str = ""


def owners(run_dir: Path) -> dict[str, str]:
    """Local port → the service whose process (or child) holds it; `ss` knows the pids."""
    services = {pid: name for name, root in service_pids(run_dir).items()
                if name != "supervisor" for pid in family([root])}
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        fields = line.split()
        pid = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and pid and int(pid.group(1)) in services:
            found[fields[3].rsplit(":", 1)[1]] = services[int(pid.group(1))]
    return found


def packets(capture: Path, names: dict[str, str], api_port: str) -> list[Packet]:
    """The capture's data packets, named by sender and target, with their printable text."""
    text = subprocess.run(["tcpdump", "-r", str(capture), "-nn", "-tt", "-A"],
                          capture_output=True, text=True, errors="replace").stdout
    known = {**PORTS, api_port: "gateway", **names}

    def name(port: str) -> str:
        return known.get(port, "client")

    found: list[Packet] = []
    for line in text.splitlines():
        head = HEADER.match(line)
        if head:
            at, source, target, length = head.groups()
            found.append(Packet(float(at), name(source), name(target), int(length)))
        elif found:
            found[-1].text += line
    return [p for p in found if p.length > 0]


def paths(found: list[Packet]) -> list[list[Packet]]:
    """Per webhook: its packets from the POST to the worker's claim (none if it never came)."""
    out = []
    posts = [i for i, p in enumerate(found) if "POST /api/v1/webhooks" in p.text]
    for i in posts:
        for j in range(i + 1, len(found)):
            if j in posts:
                break
            if found[j].source.startswith("worker") and "WITH moved" in found[j].text:
                out.append(found[i:j + 1])
                break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--action", default="core.echo")
    args = parser.parse_args()
    if shutil.which("tcpdump") is None:
        print("needs tcpdump (apt-get install tcpdump) and root", file=sys.stderr)
        return 2
    api_port = str(urlsplit(args.url).port or 80)
    api, trigger, rule_id = bench_rule(args.url, args.action)
    hooks = Sender(args.url, trigger)
    hooks.fire(-1)  # the connection and the pools warm before the capture
    with tempfile.TemporaryDirectory() as folder:
        capture = Path(folder) / "path.pcap"
        dump = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-nn", "-s", "512", "-w", str(capture),
             f"tcp port {api_port} or tcp port 5432 or tcp port 5672"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        for i in range(args.count):
            hooks.fire(i)
            time.sleep(1.0 / args.rate)
        finished(api, args.url, rule_id, len(hooks.sent), 30.0)
        names = owners(args.run_dir)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
        webhooks = paths(packets(capture, names, api_port))
    if not webhooks:
        print("no webhook's path was captured whole", file=sys.stderr)
        return 1
    totals = [1000 * (path[-1].at - path[0].at) for path in webhooks]
    median = statistics.median_low(totals)
    print(f"{len(webhooks)} webhooks, request → worker's claim: median {median:.2f} ms, "
          f"min {min(totals):.2f}, max {max(totals):.2f}; the median one:")
    path = webhooks[totals.index(median)]
    for packet in path:
        what = WHAT.search(re.sub(r"[^ -~]", ".", packet.text))
        print(f"{1000 * (packet.at - path[0].at):8.2f} ms  {packet.source:>10} → "
              f"{packet.target:<10} {packet.length:5d} B  {what.group(0) if what else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
