"""The helpers every benchmark shares (bench/common.py)."""

import os
import subprocess
import sys

from bench.common import (
    children,
    cpu_seconds,
    family_cpu_seconds,
    parse_ts,
    pct,
    pids_named,
    pss_mib,
    rss_mib,
    service_pids,
)
from tests.support.factories import wait_until


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert pct(values, 50) == 51.0 and pct(values, 95) == 95.0 and pct(values, 100) == 100.0
    assert pct([7.0], 99) == 7.0


def test_api_timestamps_parse_with_z_or_offset():
    assert parse_ts("2026-11-26T00:00:00Z") == parse_ts("2026-11-26T00:00:00+00:00")
    assert parse_ts("2026-11-26T00:00:01.500Z") - parse_ts("2026-11-26T00:00:00Z") == 1.5


def test_children_finds_grandchildren_and_proc_figures_read(tmp_path):
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        wait_until(lambda: children(child.pid))
        assert child.pid in children(os.getpid())
        assert len(children(child.pid)) == 1
    finally:
        subprocess.run(["pkill", "-P", str(child.pid)], check=False)
        child.kill()
        child.wait()
    assert rss_mib(os.getpid()) > 1 and cpu_seconds(os.getpid()) > 0
    assert 0 < pss_mib(os.getpid()) <= rss_mib(os.getpid())
    assert rss_mib(child.pid) is None and pss_mib(child.pid) is None
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "worker.pid").write_text("123\n")
    assert service_pids(tmp_path) == {"worker": 123} and service_pids(None) == {}


def test_family_cpu_counts_children_that_ended_and_processes_are_found_by_name():
    me = os.getpid()
    reaped_before = cpu_seconds(me, reaped=True) - cpu_seconds(me)
    family_before = family_cpu_seconds([me])
    burn = "import time\nwhile time.process_time() < 0.2: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)  # started, burnt, ended, reaped
    assert cpu_seconds(me, reaped=True) - cpu_seconds(me) - reaped_before >= 0.15
    assert family_cpu_seconds([me]) - family_before >= 0.15
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        # until the child has exec'd, its command line is still this interpreter's
        wait_until(lambda: sleeper.pid in pids_named("sleep", "no-such-command"))
        assert me not in pids_named("sleep")
    finally:
        sleeper.kill()
        sleeper.wait()
