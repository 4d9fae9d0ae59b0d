"""The Dramatiq broker podflow runs on, and which failures it retries.

:func:`build_broker` picks RedisBroker for ``redis://``/``rediss://``/``unix://``
and RabbitmqBroker for ``amqp://``/``amqps://`` and declares the middleware
explicitly (Dramatiq's defaults would impose a 10-minute time limit and retry
every exception 20 times):

==========================  ==================================================
AgeLimit                    drops messages older than their ``max_age`` option
TimeLimit                   the soft time limit, set per actor (never 10 min)
ShutdownNotifications       opt-in per actor; ``generate_podcast`` does not opt
                            in: podflow interrupts only the generator itself
Callbacks, Pipelines        Dramatiq's composition features
Retries                     exponential backoff, :func:`retry_when` decides
                            (the policy is :mod:`podflow.retry`)
CurrentMessage              the message being processed, per thread
Results                     only when PODFLOW_RESULT_BACKEND is set
QueuePrefetch               a worker prefetches one message per thread, and
                            polls the delay queues and the low band seldom
                            (:mod:`podflow.worker.prefetch`)
==========================  ==================================================

and, first of all, RunLogContext: each message's run is bound for the log lines
about it, Dramatiq's own included (:mod:`podflow.logs`).

The worker-process resources (store, heartbeat monitor) are added by
:mod:`podflow.worker.actors`, so an API process building the same broker to send
messages opens nothing it does not need.

On Redis every process that talks to the broker, sender or worker, appears in
Dramatiq's ``__heartbeats__`` set under its ``broker_id``. podflow names it
``<role>@<host>:<pid>:<random>`` (:func:`client_id`), and a worker adds
``:<store id>:<queue>`` once it has opened its store, so ``podflow status`` can
tell workers from API and scheduler processes, say where each runs, and which
store each works for. The Redis broker is podflow's :class:`~podflow.worker.messages.RedisBroker`
(a message kept under its own id, so the sweep can ask for it), with Dramatiq's
worker heartbeat timeout from :attr:`Settings.broker_heartbeat_timeout_s`.

Every message names the store its run belongs to in its options
(:data:`STORE_OPTION`): a worker of another store puts it back instead of
dropping it (two deployments on one queue).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
import redis
from dramatiq.errors import BrokerConnectionError
from dramatiq.errors import Retry as DramatiqRetry
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    Shutdown,
    ShutdownNotifications,
    TimeLimit,
)
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from ..errors import BrokerUnavailable
from ..logs import bind_run, unbind_run
from ..retry import MAX_MESSAGE_RETRIES, connection_errors, should_retry
from .bands import band_queue
from .messages import RedisBroker
from .prefetch import QueuePrefetch

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "ACTOR_NAME",
    "QUEUE_NAME",
    "START_OPTION",
    "STORE_OPTION",
    "ClientId",
    "RunLogContext",
    "broker_errors",
    "build_broker",
    "close_broker",
    "build_result_backend",
    "client_id",
    "parse_client_id",
    "ping_broker",
    "retry_when",
]

#: the actor every podcast run goes through, and its queue unless PODFLOW_QUEUE says otherwise
QUEUE_NAME = "podcast"
ACTOR_NAME = "generate_podcast"
#: the message option naming the store the run belongs to (``Store.store_id``)
STORE_OPTION = "podflow_store"
#: the message option of a scheduled run: its start, ms since the epoch (a worker
#: puts an early delivery back until then)
START_OPTION = "podflow_start_at"

def retry_when(retries: int, exc: BaseException) -> bool:
    """Dramatiq's ``retry_when``: podflow's policy (:func:`podflow.retry.should_retry`:
    transient failures and worker shutdowns, whose run was released first), plus
    Dramatiq's own connection errors, ``Shutdown`` and ``Retry`` (what the actor
    raises for a released run when it cannot put the message back itself: no
    CurrentMessage middleware; the worker logs no traceback for it); at most
    :data:`~podflow.retry.MAX_MESSAGE_RETRIES` times."""
    dramatiqs_own = retries < MAX_MESSAGE_RETRIES and isinstance(exc, BrokerConnectionError | Shutdown | DramatiqRetry)
    return should_retry(retries, exc) or dramatiqs_own


def _connection_errors() -> tuple[type[BaseException], ...]:
    return (*connection_errors(), BrokerConnectionError)


@contextlib.contextmanager
def broker_errors(action: str) -> Iterator[None]:
    """Turn a broker client's connection error (:func:`podflow.retry.connection_errors`)
    or Dramatiq's into :class:`BrokerUnavailable`."""
    try:
        yield
    except _connection_errors() as exc:
        raise BrokerUnavailable(f"{action}: broker unreachable: {exc or type(exc).__name__}") from exc


def build_result_backend(url: str) -> Any:
    """Dramatiq's RedisBackend for ``url`` (PODFLOW_RESULT_BACKEND)."""
    from dramatiq.results.backends import RedisBackend

    return RedisBackend(url=url)


class RunLogContext(Middleware):
    """Every line logged while a ``generate_podcast`` message is processed, by
    podflow or by Dramatiq (its failure and retry lines), names the run and the
    message. First in the list: Dramatiq calls ``before_*`` hooks in order and
    ``after_*`` hooks in reverse, so the context covers every other middleware's
    (Retries logs in its ``after_process_message``)."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.actor_name == ACTOR_NAME and message.args:
            bind_run(str(message.args[0]), message_id=message.message_id)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        unbind_run()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        unbind_run()


def _middleware(settings: Settings) -> list[Middleware]:
    middleware: list[Middleware] = [
        RunLogContext(),
        AgeLimit(),
        # the actor sets its own limit; the middleware default is a fallback
        # for other actors and is the soft limit too, never Dramatiq's 10 min
        TimeLimit(time_limit=int(settings.soft_time_limit_s * 1000)),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=MAX_MESSAGE_RETRIES,
            min_backoff=max(1, int(settings.retry_backoff_s * 1000)),
            max_backoff=max(1, int(settings.retry_backoff_max_s * 1000)),
            retry_when=retry_when,
        ),
        CurrentMessage(),
        # the low band's queue is polled as seldom as the delay queues
        QueuePrefetch(slow_queues=frozenset({band_queue(settings.queue_name, "low")})),
    ]
    if settings.result_backend:
        from dramatiq.results import Results

        middleware.append(Results(backend=build_result_backend(settings.result_backend)))
    return middleware


_UNSAFE_HOST_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def client_id(role: str, *, store_id: str | None = None, queue: str | None = None) -> str:
    """A broker id naming this process: ``<role>@<host>:<pid>:<random>``, and
    ``:<store_id>:<queue>`` for a worker that knows them.

    Dramatiq uses it in Redis key names and in a ``KEYS`` pattern during
    maintenance, so the host is reduced to characters that are never special
    (store ids are hex; queue names, letters, digits, ``_.-``).
    """
    host = _UNSAFE_HOST_CHARS.sub("-", socket.gethostname()) or "localhost"
    ident = f"{role}@{host}:{os.getpid()}:{secrets.token_hex(4)}"
    return f"{ident}:{store_id}:{queue or QUEUE_NAME}" if store_id else ident


@dataclass(frozen=True, slots=True)
class ClientId:
    """What a broker id says about its process (role, host and pid are None
    for an id podflow did not make, e.g. a plain Dramatiq worker's uuid; store_id
    and queue are None for a sender, or a worker that could not open its store)."""

    id: str
    role: str | None = None
    host: str | None = None
    pid: int | None = None
    store_id: str | None = None
    queue: str | None = None


def parse_client_id(value: str) -> ClientId:
    """The inverse of :func:`client_id`; never fails."""
    role, at, rest = value.partition("@")
    parts = rest.split(":")
    if not at or len(parts) not in (3, 5) or not parts[1].isdigit():
        return ClientId(value)
    store_id, queue = (parts[3], parts[4]) if len(parts) == 5 else (None, None)
    return ClientId(value, role=role, host=parts[0], pid=int(parts[1]), store_id=store_id, queue=queue)


def build_broker(settings: Settings, *, role: str = "client") -> dramatiq.Broker:
    """The broker PODFLOW_BROKER_URL names, with podflow's middleware. Connects lazily.

    ``role`` names the process in the broker's heartbeats (Redis only):
    ``worker`` for ``podflow.actors``, which also keeps a presence record
    (:mod:`podflow.worker.presence`); ``api``, ``scheduler``, ``cli`` for senders.
    """
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # confirm_delivery: an enqueue returns only once RabbitMQ has the
        # message, so marking the run enqueued afterwards is the truth
        return RabbitmqBroker(url=url, confirm_delivery=True, middleware=_middleware(settings))
    # a few quick reconnects, then fail: a submit with the broker down should
    # report it within a second or two, not after redis-py's ten retries
    # and a bounded connect, so a host that drops packets cannot hold a thread
    # for the operating system's connect timeout
    client = redis.Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
        socket_connect_timeout=5,
        socket_keepalive=True,
    )
    broker = RedisBroker(
        client=client,
        middleware=_middleware(settings),
        heartbeat_timeout=int(settings.broker_heartbeat_timeout_s * 1000),
    )
    broker.broker_id = client_id(role)
    if role == "worker":
        from .presence import WorkerPresence

        broker.add_middleware(
            WorkerPresence(processes=settings.worker_processes, interval_s=settings.heartbeat_interval_s)
        )
    return broker


def ping_broker(broker: dramatiq.Broker) -> None:
    """Raises BrokerUnavailable unless the broker answers."""
    with broker_errors("ping"):
        client = getattr(broker, "client", None)
        if client is not None:
            client.ping()
        else:  # RabbitMQ: opening the connection is the check
            _ = broker.connection  # type: ignore[attr-defined]


def close_broker(broker: dramatiq.Broker) -> None:
    """Close ``broker`` and its connections (RedisBroker.close leaves its client's pool open)."""
    broker.close()
    client = getattr(broker, "client", None)
    if client is not None:
        client.close()
