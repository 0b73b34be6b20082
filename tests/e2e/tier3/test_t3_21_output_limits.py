"""T3.21 — an action printing 10 MB: the stored text is cut at worker.max_output_size_bytes
(1 MiB in config.e2e.yaml) and ends with the truncation marker, `truncated: true`, the status is
the action's own, the row stays small, and the worker's memory does not grow with the output.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action
from tests.support.orchestration import execute
from tests.support.services import pid_of

LIMIT = 1048576  # config.e2e.yaml worker.max_output_size_bytes
MARKER = f"... (output truncated after {LIMIT} bytes)"
TEN_MB = 10 * 1024 * 1024

LOUD = '''
import sys

def run(exit_code=0, mib=10):
    line = "x" * 1023 + "\\n"
    for _ in range(mib * 1024):          # `mib` MiB on stdout
        sys.stdout.write(line)
    for _ in range(2 * 1024):            # 2 MiB on stderr
        sys.stderr.write(line)
    sys.stdout.flush(); sys.stderr.flush()
    if exit_code:
        sys.exit(exit_code)
    return {"lines": mib * 1024}
'''
PARAMS = {"exit_code": {"type": "integer"}, "mib": {"type": "integer"}}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_ten_megabytes_of_output_are_cut_at_the_cap_with_the_marker(api, database):
    action = make_action(api, "loud", "ten_mb", LOUD, parameters=PARAMS)
    done = wait_for_execution(api, execute(api, action["ref"])["id"], timeout=120)

    assert done["status"] == "succeeded"  # large output is not a failure
    result = done["result"]
    assert result["truncated"] is True
    assert result["output"] == {"lines": 10 * 1024}  # the return value is intact
    for stream in ("stdout", "stderr"):
        stored = result[stream]
        assert stored.endswith(MARKER)
        body = stored[: -len(MARKER)]
        assert len(body.encode()) == LIMIT  # exactly the first MiB
        assert set(body) == {"x", "\n"}

    with database.connect() as conn:
        size = conn.execute(text("SELECT pg_column_size(result) FROM executions WHERE id = :id"),
                            {"id": done["id"]}).scalar_one()
    assert size < 3 * LIMIT  # two capped streams and a little JSON, never the 12 MiB printed



def test_the_workers_memory_does_not_grow_with_the_output(api, platform):
    """Storing a capped result costs the same few MiB whatever was printed: after a 10 MiB
    run, a 60 MiB run leaves the worker's RSS within 10 MiB (memory is not per output byte).

    Other tests' timers keep running actions in the same worker, which moves its RSS by a
    few MiB either way at random; a cost per output byte (50 MiB more here) shows in every
    60 MiB run, so the smaller growth of two runs is what is judged."""
    worker = pid_of(platform, "worker")
    action = make_action(api, "loud", "sized", LOUD, parameters=PARAMS)
    first = wait_for_execution(api, execute(api, action["ref"], {"mib": 10})["id"], timeout=120)
    assert first["result"]["truncated"] is True

    growths = []
    for _ in range(2):
        before = rss_bytes(worker)
        big = wait_for_execution(api, execute(api, action["ref"], {"mib": 60})["id"],
                                 timeout=180)
        assert big["status"] == "succeeded" and big["result"]["output"] == {"lines": 60 * 1024}
        assert big["result"]["stdout"].endswith(MARKER)
        growths.append(rss_bytes(worker) - before)
    assert min(growths) < TEN_MB, f"worker RSS grew by {growths} bytes for 50 MiB more output"


def test_a_failing_action_with_huge_output_keeps_its_own_status(api):
    action = make_action(api, "loud", "ten_mb_fail", LOUD, parameters=PARAMS)
    done = wait_for_execution(api, execute(api, action["ref"], {"exit_code": 3})["id"],
                              timeout=120)
    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "nonzero_exit"
    assert done["result"]["exit_code"] == 3
    assert done["result"]["truncated"] is True
    assert done["result"]["stdout"].endswith(MARKER)
