"""``podflow worker``: start the Dramatiq worker processes of queue mode.

It runs::

    python -m dramatiq podflow.actors --processes PODFLOW_WORKER_PROCESSES
        --threads PODFLOW_CONCURRENCY
        --queues PODFLOW_QUEUE.high PODFLOW_QUEUE PODFLOW_QUEUE.low
        --worker-shutdown-timeout 60000

(every priority band's queue, :mod:`podflow.worker.bands`)

in a session of its own and relays SIGTERM, SIGINT and SIGHUP to Dramatiq's
main process only, as systemd's ``KillMode=mixed`` does. A process manager
that signals the whole process group (honcho, so ``make run``) would also hit
Dramatiq's worker processes directly; with the SIGTERM their main process
forwards, that is two, and a worker process takes a second SIGTERM as "exit
now", without releasing its runs.

On SIGTERM each worker process interrupts its running generations at once
(they are released and retried by another worker after the retry backoff;
the interrupted attempt counts), finishes its bookkeeping and exits;
:data:`SHUTDOWN_TIMEOUT_S` bounds that, in case a generator sits in a blocking
call that the interrupt cannot break. A service manager must allow longer
than that before killing the worker (systemd ``TimeoutStopSec=90`` or more).
Each process prefetches one message per thread
(``podflow.worker.prefetch.QueuePrefetch``), so a busy worker does not hold runs that
an idle host could execute. The systemd unit runs the same command without
this wrapper (``deploy/systemd/podflow-worker.service``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..errors import ConfigError
from ..exitcodes import RET_CONFIG, RET_OK
from ..generation.loader import load_generator
from ..settings import Settings
from ..worker.bands import band_queues
from ._process import run_relaying

__all__ = ["SHUTDOWN_TIMEOUT_S", "command"]

#: how long a stopping worker waits for its threads (Dramatiq's default is 10 min)
SHUTDOWN_TIMEOUT_S = 60


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="start the Dramatiq workers that execute runs (queue mode)")
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    parser.set_defaults(handler=run)


def command(settings: Settings) -> list[str]:
    """The worker command line for ``settings``."""
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "podflow.actors",
        "--processes",
        str(settings.worker_processes),
        "--threads",
        str(settings.concurrency),
        "--queues",
        *band_queues(settings.queue_name).values(),
        "--worker-shutdown-timeout",
        str(SHUTDOWN_TIMEOUT_S * 1000),
    ]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.mode == "thread":
        print("podflow: PODFLOW_MODE=thread: runs execute inside the API process; no worker is needed", file=sys.stderr)
        return RET_CONFIG
    try:  # fail here with one line rather than in every worker process
        load_generator(settings.generator)
    except ConfigError as exc:
        print(f"podflow: {exc}", file=sys.stderr)
        return RET_CONFIG
    argv = command(settings)
    if args.print:
        print(shlex.join(argv))
        return RET_OK
    sys.stdout.flush()
    sys.stderr.flush()
    code, _ = run_relaying(argv)
    return code
