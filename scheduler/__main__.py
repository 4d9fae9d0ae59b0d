"""``python -m scheduler [--once]``: see :mod:`scheduler.process`.

Exits 78 with one line on an invalid setting (systemd does not restart it),
0 after SIGTERM or SIGINT; ``--once`` sweeps once and exits 0, or 69 when the
store or broker cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from podflow.cli import configure_logging, fail
from podflow.cli.sweep import run_once
from podflow.errors import ConfigError
from podflow.exitcodes import RET_CONFIG
from podflow.settings import load_settings, unknown_variables
from podflow.sweep.service import build_sweeper

from .process import SweepScheduler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler", description="podflow's scheduler: sweep every PODFLOW_SWEEP_INTERVAL until SIGTERM."
    )
    parser.add_argument("--once", action="store_true", help="run one sweep and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(str(exc), RET_CONFIG)
    configure_logging(settings.log_level)
    for note in unknown_variables(dict(os.environ)):
        logging.getLogger("scheduler").warning("unknown setting %s", note)
    # one line per sweep is ours; APScheduler's "Running job"/"executed" lines are noise
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    if args.once:
        return run_once(settings, role="scheduler")
    return SweepScheduler(build_sweeper(settings), interval_s=settings.sweep_interval_s).run()


if __name__ == "__main__":
    sys.exit(main())
