"""nameko_services.metrics in prometheus-client's multiprocess mode, as `attune up` runs it:
several real processes count into one folder and one exposition sums them; a process that
ended keeps its counts in the sum (counters never go back) and drops out of live gauges."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.e2e import wait_until

COUNT = """
import os
from nameko_services import metrics
metrics.EXECUTIONS_FINISHED.labels("succeeded", "shell").inc({n})
metrics.EXECUTION_QUEUE.observe(0.02)
metrics.WS_CLIENTS.inc()
print(os.getpid())
"""

SCRAPE = """
import sys
from prometheus_client import generate_latest
from nameko_services import metrics
{before}
sys.stdout.write(generate_latest(metrics.exposition()).decode())
"""


def run(code: str, folder: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_processes_of_a_host_are_summed_and_an_ended_one_keeps_its_counts(tmp_path):
    first = int(run(COUNT.format(n=3), tmp_path))
    run(COUNT.format(n=4), tmp_path)
    both = samples(run(SCRAPE.format(before=""), tmp_path))
    finished = ("attune_executions_finished_total", (("runner", "shell"),
                                                     ("status", "succeeded")))
    assert both[finished] == 7
    assert both[("attune_execution_queue_seconds_count", ())] == 2
    assert both[("attune_ws_clients", ())] == 2  # neither was marked ended yet
    assert [labels for name, labels in both if name == "attune_build_info"] == [
        (("version", metadata.version("attune")),)]
    assert ("process_cpu_seconds_total", ()) in both  # the answering process's

    after = samples(run(SCRAPE.format(before=f"metrics.process_ended({first})"), tmp_path))
    assert after[finished] == 7  # what it counted stays: no counter reset
    assert after[("attune_ws_clients", ())] == 1  # its live gauge is gone


def test_reset_empties_the_folder_for_a_fresh_start(tmp_path):
    run(COUNT.format(n=1), tmp_path)
    assert list(tmp_path.glob("*.db"))
    from nameko_services import metrics

    metrics.reset(tmp_path)
    assert not list(tmp_path.glob("*.db"))
    assert ("attune_executions_finished_total", (("runner", "shell"), ("status", "succeeded"))
            ) not in samples(run(SCRAPE.format(before=""), tmp_path))


def test_attune_metrics_serves_the_hosts_sums_until_sigterm(tmp_path):
    """`attune metrics`: the exporter of a systemd host or Kubernetes pod without a gateway."""
    run(COUNT.format(n=2), tmp_path)
    run(COUNT.format(n=5), tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    exporter = subprocess.Popen(
        [sys.executable, "-m", "nameko_services.cli", "metrics", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        def scrape() -> str | None:
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.ConnectionError:
                assert exporter.poll() is None, exporter.stdout.read()
                return None

        text = wait_until(scrape, 30, message="attune metrics to answer")
        finished = ("attune_executions_finished_total", (("runner", "shell"),
                                                         ("status", "succeeded")))
        assert samples(text)[finished] == 7
    finally:
        exporter.terminate()
        assert exporter.wait(timeout=30) == 0


def test_attune_metrics_refuses_without_the_hosts_folder():
    env = {name: value for name, value in os.environ.items()
           if name != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-m", "nameko_services.cli", "metrics"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "PROMETHEUS_MULTIPROC_DIR must name the folder" in done.stderr
