"""Resident memory of a running platform (target: ≤ 400 MiB RSS idle for the whole platform,
architecture.md): each service process and its descendants (fork servers, sensor processes),
read from /proc via `<run-dir>/pids`. RSS counts the shared libraries once per process; PSS
(proportional set size, `smaps_rollup`) splits shared pages between their users, so its total
is what the platform really occupies. Usage:

    .venv/bin/python -m bench.footprint --run-dir .attune/dev

PostgreSQL and RabbitMQ are shared infrastructure and listed apart, not in the total.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import children, pids_named, pss_mib, rss_mib, service_pids


def infrastructure_mib(name: str) -> float:
    """Summed PSS of the processes called `name` (PostgreSQL's backends share their buffers,
    so their RSS would count them once per backend)."""
    return sum(pss_mib(pid) or 0.0 for pid in pids_named(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path(".attune/dev"))
    args = parser.parse_args()
    pids = service_pids(args.run_dir)
    if not pids:
        print(f"no pid files under {args.run_dir}/pids: is the platform up?", file=sys.stderr)
        return 1
    rss_total = pss_total = 0.0
    for name, pid in pids.items():
        family = [pid, *children(pid)]
        rss = sum(rss_mib(member) or 0.0 for member in family)
        pss = sum(pss_mib(member) or 0.0 for member in family)
        rss_total += rss
        pss_total += pss
        print(f"{name:<9} RSS {rss:7.1f} MiB  PSS {pss:7.1f} MiB  ({len(family)} process(es))")
    print(f"{'platform':<9} RSS {rss_total:7.1f} MiB  PSS {pss_total:7.1f} MiB")
    print(f"(shared infrastructure, PSS: PostgreSQL {infrastructure_mib('postgres'):.1f} MiB, "
          f"RabbitMQ {infrastructure_mib('beam.smp'):.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
