"""``podflow sweep --once``: sweep now, once (the scheduler does it every PODFLOW_SWEEP_INTERVAL).

Checks that the store and (in queue mode) the broker answer, runs one sweep
under the sweep lease and prints its counts. Exits 0, or 69
(RET_UNAVAILABLE) with one line when the store or broker cannot be reached
or a run could not be sent.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BrokerUnavailable, StoreError
from ..exitcodes import RET_OK, RET_UNAVAILABLE
from ..settings import Settings
from ..sweep.service import build_sweeper, summary

__all__ = ["register", "run_once"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="run the sweep once, now (`podflow scheduler` runs it periodically)")
    parser.add_argument("--once", action="store_true", required=True, help="run one sweep and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_once(settings, role="cli")


def _unavailable(what: str, exc: Exception) -> int:
    print(f"podflow: sweep failed: {what} unavailable: {exc}", file=sys.stderr)
    return RET_UNAVAILABLE


def run_once(settings: Settings, *, role: str) -> int:
    """One sweep from the settings; the exit code. ``role`` names the process
    in the broker's heartbeats (``cli`` or ``scheduler``)."""
    sweeper = build_sweeper(settings, role=role)
    try:
        sweeper.check()
        report = sweeper.sweep_once()
    except StoreError as exc:
        return _unavailable("store", exc)
    except BrokerUnavailable as exc:
        return _unavailable("broker", exc)
    finally:
        sweeper.close()
    if report is None:
        print("sweep skipped: another scheduler holds the sweep lease")
        return RET_OK
    print(f"sweep: {summary(report)}")
    if report.send_errors:
        print(
            f"podflow: broker unavailable: {report.send_errors} run(s) could not be sent; the next sweep sends them",
            file=sys.stderr,
        )
        return RET_UNAVAILABLE
    return RET_OK
