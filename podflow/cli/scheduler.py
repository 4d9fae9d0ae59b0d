"""``podflow scheduler``: the process that sweeps every PODFLOW_SWEEP_INTERVAL.

It replaces itself (exec) with ``python -m scheduler`` (the APScheduler
process in ``scheduler/``; podflow/ never imports it), so signals reach the
scheduler directly. ``--once`` runs one sweep here and exits, as
``podflow sweep --once`` does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from ..exitcodes import RET_OK
from ..settings import Settings
from .sweep import run_once

__all__ = ["command", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("scheduler", help="sweep every PODFLOW_SWEEP_INTERVAL (the scheduler process)")
    parser.add_argument("--once", action="store_true", help="run one sweep and exit")
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    parser.set_defaults(handler=run)


def command() -> list[str]:
    """The scheduler process's command line."""
    return [sys.executable, "-m", "scheduler"]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.once:
        return run_once(settings, role="scheduler")
    argv = command()
    if args.print:
        print(shlex.join(argv))
        return RET_OK
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return RET_OK  # pragma: no cover - exec does not return
