"""Monitoring: the dashboard's overview and the Prometheus metrics.

Both are computed by the library (:mod:`podflow.monitoring.overview`, :mod:`podflow.monitoring.prometheus`)
at request time, from the store and the broker. ``/metrics`` is outside
``/api/`` where Prometheus looks for it, but like ``/api/`` it requires the
bearer token when PODFLOW_API_TOKEN is set (Prometheus sends it with
``authorization: {credentials_file: ...}``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from podflow.monitoring import overview as monitor
from podflow.monitoring.prometheus import PodflowCollector, render_metrics

from ..routing import Media, RouteTable
from ..schemas import respond
from ..services import services

__all__ = ["routes"]

routes = RouteTable("monitoring")

METRICS = (
    Media("text/plain", {"type": "string", "description": "the Prometheus text format (version 0.0.4)"}),
    Media("application/openmetrics-text", {"type": "string", "description": "OpenMetrics, when Accept asks for it"}),
)


@routes.get("/api/monitor/overview", {200: monitor.Overview}, name="monitor_overview")
def overview(request: Request) -> Response:
    """Queues, workers, runs by status, runs finished per minute over the last hour, and sweeps.

    What the dashboard polls. `broker` is null in thread mode; a broker that
    does not answer is named in `broker.error` (queues empty, workers null)
    rather than failing the request.
    """
    api = services(request)
    return respond(monitor.overview(api.store, api.broker, mode=api.settings.mode, now=api.clock()))


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
    )
    body, content_type = render_metrics(collector, accept=request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
