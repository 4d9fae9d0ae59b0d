"""The sweep as a process runs it: ``podflow sweep --once`` and the scheduler.

:class:`Sweeper` holds what a sweeping process needs: the store (opened on
first use, and opened again by the next sweep when that failed), the
dispatcher of queue mode (none in thread mode, where the API process
dispatches and a scheduler only runs the failing rules), the policy and the
lease holder's name. Every sweep goes through
:func:`podflow.sweep.locked_sweep`; a scheduled one logs one line with its counts.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..dispatch.queue import QueueDispatcher
from ..errors import BrokerUnavailable, StoreError
from ..store import open_store
from ..store.base import Store
from ..timeutil import utcnow
from ..worker.broker import build_broker, ping_broker
from . import SweepPolicy, SweepReport, locked_sweep

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Sweeper", "build_sweeper", "holder_id", "summary"]

log = logging.getLogger(__name__)


def summary(report: SweepReport) -> str:
    """A sweep's counts on one line: ``time_limit=0 worker_lost=1 ...``."""
    return " ".join(f"{name}={count}" for name, count in report.as_dict().items())


def holder_id() -> str:
    """This process's name on the sweep lease: ``<host>:<pid>:<random>``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Sweeper:
    """Runs sweeps for one process.

    Parameters:
      open_store: opens the store (called on first use, and again after it failed).
      policy: the limits the sweep enforces.
      dispatcher: sends runs (queue mode); None runs only the failing rules.
      holder: the name this process takes the sweep lease under.
      clock: the current time (tests pass their own).
    """

    def __init__(
        self,
        *,
        open_store: Callable[[], Store],
        policy: SweepPolicy,
        dispatcher: QueueDispatcher | None,
        holder: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.policy = policy
        self.dispatcher = dispatcher
        self.holder = holder
        self._open_store = open_store
        self._clock = clock
        self._store: Store | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened on first use.

        Raises: StoreUnavailable.
        """
        with self._lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def check(self) -> None:
        """Raises StoreUnavailable or BrokerUnavailable unless both answer."""
        self.store.ping()
        if self.dispatcher is not None:
            ping_broker(self.dispatcher.broker)

    def sweep_once(self) -> SweepReport | None:
        """One sweep under the lease; None if another process holds it.

        Raises:
          StoreUnavailable: the store cannot be reached (the broker being down
            only shows as ``send_errors``: the failing rules still ran).
        """
        return locked_sweep(
            self.store, now=self._clock(), policy=self.policy, holder=self.holder, dispatcher=self.dispatcher
        )

    def scheduled_sweep(self) -> None:
        """:meth:`sweep_once` for a scheduler job, logging one line. Never
        raises, so the next interval runs whatever happened to this one."""
        began = time.monotonic()
        log.debug("sweep: starting")
        try:
            report = self.sweep_once()
        except (StoreError, BrokerUnavailable) as exc:
            log.warning("sweep failed, trying again next interval: %s", exc)
            return
        except Exception:  # a bug: say so loudly, but keep the schedule
            log.exception("sweep failed unexpectedly; trying again next interval")
            return
        if report is None:
            return  # another process holds the lease (locked_sweep said so)
        line = f"sweep: {summary(report)} ({time.monotonic() - began:.3f} s)"
        if report.send_errors:  # the broker is down: the failing rules ran, the sends wait
            log.warning("%s; the broker is unreachable, the next sweep sends the rest", line)
        else:
            log.info("%s", line)

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()
        if self.dispatcher is not None:
            self.dispatcher.broker.close()


def build_sweeper(settings: Settings, *, role: str = "scheduler") -> Sweeper:
    """The sweeper the settings describe: with a :class:`QueueDispatcher` in
    queue mode, without one in thread mode. Opens nothing yet."""
    dispatcher = None
    if settings.mode == "queue":
        dispatcher = QueueDispatcher(broker=build_broker(settings, role=role), queue_name=settings.queue_name)
    else:
        log.info("PODFLOW_MODE=thread: the API process dispatches runs; sweeps here only fail what is overdue")
    return Sweeper(
        open_store=lambda: open_store(settings),
        policy=SweepPolicy.from_settings(settings),
        dispatcher=dispatcher,
        holder=holder_id(),
    )
