"""Monitoring: the dashboard's overview, the dead-letter queue, and the Prometheus metrics.

Both are computed by the library (:mod:`podflow.monitoring.overview`, :mod:`podflow.monitoring.prometheus`)
at request time, from the store and the broker. ``/metrics`` is outside
``/api/`` where Prometheus looks for it, but like ``/api/`` it requires the
bearer token when PODFLOW_API_TOKEN is set (Prometheus sends it with
``authorization: {credentials_file: ...}``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import NotFound, NotSupported
from podflow.monitoring import overview as monitor
from podflow.monitoring.prometheus import PodflowCollector, render_metrics
from podflow.worker import deadletter
from podflow.worker.bands import band_queues

from ..routing import Media, RouteTable
from ..schemas import DeadLetterList, DeadLetterQuery, DeadLetterView, respond
from ..services import Services, services

__all__ = ["routes"]

routes = RouteTable("monitoring")

METRICS = (
    Media("text/plain", {"type": "string", "description": "the Prometheus text format (version 0.0.4)"}),
    Media("application/openmetrics-text", {"type": "string", "description": "OpenMetrics, when Accept asks for it"}),
)


@routes.get("/api/monitor/overview", {200: monitor.Overview}, name="monitor_overview")
def overview(request: Request) -> Response:
    """Queues, workers, runs by status, runs finished per minute over the last hour, and sweeps.

    What the dashboard polls; computed at most once a second per API process,
    however many browsers poll (`at` says when). `broker` is null in thread mode; a broker that
    does not answer is named in `broker.error` (queues empty, workers null)
    rather than failing the request.
    """
    api = services(request)
    overview = api.overview.get(
        lambda: monitor.overview(
            api.store, api.broker, mode=api.settings.mode, now=api.clock(), queue=api.settings.queue_name
        )
    )
    return respond(overview)


@routes.get("/metrics", {200: METRICS}, errors=(503,), private=True)
def metrics(request: Request) -> Response:
    """Prometheus metrics: runs, counters, run durations, queues, workers and sweeps.

    Computed at each scrape from the store and the broker (see README,
    "Monitoring"). Requires the bearer token when PODFLOW_API_TOKEN is set;
    503 when the store is down.
    """
    api = services(request)
    collector = PodflowCollector(
        store=api.store,
        broker=api.broker,
        mode=api.settings.mode,
        store_kind=api.settings.store_kind,
        clock=api.clock,
        queue=api.settings.queue_name,
    )
    body, content_type = render_metrics(collector, accept=request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


class QueueNotFound(NotFound):
    kind = "queue"


def _dead_letters(api: Services, queue: str) -> object:
    """The broker whose dead-letter queue ``queue`` is. Raises: QueueNotFound, NotSupported."""
    if queue not in band_queues(api.settings.queue_name).values():
        raise QueueNotFound(queue)
    if api.broker is None:
        raise NotSupported("thread mode has no broker, so no dead-letter queue")
    return api.broker


@routes.get("/api/monitor/queues/{queue}/dead", {200: DeadLetterList}, query=DeadLetterQuery, errors=(501,))
def dead_letters(request: Request, queue: str, query: DeadLetterQuery) -> Response:
    """The messages Dramatiq gave up on in `queue` (a band's: `podcast.high`, `podcast`, `podcast.low`),
    most recently dead first, with each run's status.

    Redis only (501 on RabbitMQ and in thread mode). Dead messages are kept 7 days.
    """
    api = services(request)
    dead, total = deadletter.list_dead(_dead_letters(api, queue), queue=queue, limit=query.limit)
    views = [DeadLetterView.of(message, api.store) for message in dead]
    return respond(DeadLetterList(queue=queue, total=total, messages=views))


@routes.post(
    "/api/monitor/queues/{queue}/dead/{message_id:path}/requeue",
    {200: DeadLetterView},
    errors=(501,),
    name="requeue_dead",
)
def requeue_dead(request: Request, queue: str, message_id: str) -> Response:
    """Move a dead message (its `id` or `message_id`) back to the end of its queue, its retries reset.

    An `id` is `<message_id>/<uuid>`: its slash may be sent as is or as `%2F`.

    404 once it is requeued already (or expired). Its run is then claimed as usual;
    a run that ended meanwhile is skipped by the worker.
    """
    api = services(request)
    message = deadletter.requeue(_dead_letters(api, queue), message_id, queue=queue)
    api.overview.clear()  # the queue counts changed: the next overview shows it
    return respond(DeadLetterView.of(message, api.store))
