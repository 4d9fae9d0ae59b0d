"""What the endpoints use — store, dispatcher, settings, clock — opened by the lifespan.

:func:`open_services` (blocking) opens the store and seeds the bundled profiles,
then builds the dispatcher: a :class:`~podflow.dispatch.queue.QueueDispatcher` on the
broker in queue mode, with the :class:`~podflow.dispatch.outbox.EnqueueMarks` that
confirm its sends in batches, or a started :class:`~podflow.dispatch.thread.ThreadExecutor`
in thread mode. It registers how to close each on an ``ExitStack``, so they are
closed in reverse order (executor or marks, broker, store). A store or dispatcher
passed in is used as is and left open: its owner closes it (and its sends are
confirmed one by one).

The broker connects lazily: the API starts while the broker is down, submits
then answer 503 naming the recorded run, and ``/readyz`` names the broker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
from starlette.requests import Request

from podflow.dispatch import Dispatcher
from podflow.dispatch.outbox import EnqueueMarks
from podflow.dispatch.queue import QueueDispatcher
from podflow.dispatch.thread import build_thread_executor
from podflow.generation.base import Generator
from podflow.monitoring.overview import Overview
from podflow.profiles import seed_defaults
from podflow.settings import Settings
from podflow.store import Store, open_store
from podflow.worker.broker import build_broker, close_broker

from .recent import Recent
from .watch import RunWatcher

__all__ = ["Services", "open_services", "services"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    dispatcher: Dispatcher
    #: the queue-mode broker (``/readyz`` pings it); None in thread mode
    broker: dramatiq.Broker | None
    clock: Callable[[], datetime]
    #: how often the Server-Sent Events poller reads the store, and a stream sends a keep-alive
    events_interval_s: float
    keepalive_s: float
    #: the one poller of every run followed over Server-Sent Events (api.watch)
    watcher: RunWatcher
    #: the dashboard's overview, computed at most once per ``overview_ttl_s`` for every browser
    overview: Recent[Overview]
    #: who confirms the dispatcher's sends in batches (queue mode); None: each at once
    marks: EnqueueMarks | None = None


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    found: Services = request.app.state.podflow
    return found


def open_services(
    settings: Settings,
    stack: contextlib.ExitStack,
    *,
    store: Store | None,
    dispatcher: Dispatcher | None,
    generator: Generator | None,
    clock: Callable[[], datetime],
    **options: Any,
) -> Services:
    """Open what the app needs, registering their closing on ``stack``.

    Raises:
      StoreUnavailable: the store cannot be opened or seeded.
    """
    if store is None:
        store = open_store(settings)
        stack.callback(store.close)
    seed_defaults(store, now=clock())
    broker = getattr(dispatcher, "broker", None)
    marks = None
    if dispatcher is None and settings.mode == "thread":
        executor = build_thread_executor(settings, store=store, generator=generator)
        executor.start()
        stack.callback(executor.stop)
        dispatcher = executor
    elif dispatcher is None:
        broker = build_broker(settings, role="api")
        stack.callback(close_broker, broker)
        dispatcher = QueueDispatcher(broker=broker, queue_name=settings.queue_name)
        marks = EnqueueMarks(store, clock=clock)
        stack.callback(marks.close)  # before the broker and the store
    watcher = RunWatcher(store.get_runs, interval_s=options["events_interval_s"])
    recent = Recent[Overview](ttl_s=options.pop("overview_ttl_s"))
    return Services(
        settings=settings,
        store=store,
        dispatcher=dispatcher,
        broker=broker,
        clock=clock,
        watcher=watcher,
        overview=recent,
        marks=marks,
        **options,
    )
