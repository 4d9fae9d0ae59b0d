"""``python -m scheduler [--once]``: see :mod:`scheduler.process`.

Exits 78 with one line on an invalid setting (systemd does not restart it),
0 after SIGTERM or SIGINT; ``--once`` sweeps once and exits 0, or 69 when the
store or broker cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from podflow.boot import boot
from podflow.cli.sweep import run_once
from podflow.sweep.service import build_sweeper
from podflow.webhooks.delivery import build_deliverer

from .process import SweepScheduler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler", description="podflow's scheduler: sweep every PODFLOW_SWEEP_INTERVAL until SIGTERM."
    )
    parser.add_argument("--once", action="store_true", help="run one sweep and exit")
    args = parser.parse_args(argv)
    settings = boot()
    # one line per sweep is ours; APScheduler's "Running job"/"executed" lines are noise
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    if args.once:
        return run_once(settings, role="scheduler")
    sweeper = build_sweeper(settings)
    deliverer = build_deliverer(settings, store=lambda: sweeper.store)
    return SweepScheduler(sweeper, interval_s=settings.sweep_interval_s, deliverer=deliverer).run()


if __name__ == "__main__":
    sys.exit(main())
