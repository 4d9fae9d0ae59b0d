"""Liveness and readiness, open even when PODFLOW_API_TOKEN is set."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import BrokerUnavailable, StoreUnavailable
from podflow.worker.broker import ping_broker

from ..errors import NotReady
from ..routing import RouteTable
from ..schemas import Health, Readiness, respond
from ..services import services

__all__ = ["routes"]

routes = RouteTable("health")


@routes.get("/healthz", {200: Health})
def healthz(request: Request) -> Response:
    """The process is alive (always 200 while it runs)."""
    return respond(Health())


@routes.get("/readyz", {200: Readiness}, errors=(503,))
def readyz(request: Request) -> Response:
    """The store and the broker answer (200), or 503 naming the one that does not.

    In thread mode there is no broker to check.
    """
    api = services(request)
    checks = {"store": "ok", "broker": "ok" if api.broker is not None else "not used"}
    try:
        api.store.ping()
    except StoreUnavailable as exc:
        checks["store"] = f"unavailable: {exc}"
    if api.broker is not None:
        try:
            ping_broker(api.broker)
        except BrokerUnavailable as exc:
            checks["broker"] = f"unavailable: {exc}"
    if any(state not in ("ok", "not used") for state in checks.values()):
        raise NotReady(checks)
    return respond(Readiness(checks=checks))
