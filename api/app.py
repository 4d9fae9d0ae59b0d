"""The podflow HTTP API: :func:`create_app`, and ``app`` for ``uvicorn api.app:app``.

``app`` is built on first access (``uvicorn`` looks it up after importing this
module): the settings are loaded then, and an invalid one prints one line and
exits 78, so a service manager does not restart-loop. Importing the module for
:func:`create_app` loads nothing.

Routes: the endpoints of every table in :data:`ROUTE_TABLES`. Those under
``/api/`` are served by one mount, which :class:`~api.auth.BearerAuth` guards
when PODFLOW_API_TOKEN is set, and so does each private endpoint outside it
(``/metrics``); ``/healthz``, ``/readyz``, ``/openapi.json`` and the dashboard
page stay open. The OpenAPI document is built from the same tables.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podflow import __version__
from podflow import logs as logformat
from podflow.boot import boot, config_errors
from podflow.dispatch import Dispatcher
from podflow.errors import PodflowError
from podflow.generation.loader import load_generator
from podflow.settings import Settings
from podflow.store import Store
from podflow.timeutil import utcnow

from .auth import BearerAuth
from .errors import exception_handlers
from .limits import DrainUnreadBody, drain_limit
from .openapi import build_spec, spec_path
from .routes import dashboard, docs, events, health, monitor, profiles, results, runs, sources, tasks
from .routing import Endpoint, RouteTable, allowed_methods
from .services import open_services

__all__ = ["API_PREFIX", "ROUTE_TABLES", "create_app", "mounted_routes"]

#: every route under this prefix requires the bearer token (when one is set)
API_PREFIX = "/api"

#: the endpoints the app serves, and documents, in this order
ROUTE_TABLES: tuple[RouteTable, ...] = (
    health.routes,
    docs.routes,
    runs.routes,
    events.routes,
    results.routes,
    tasks.routes,
    sources.routes,
    profiles.routes,
    monitor.routes,
    dashboard.routes,
)

DESCRIPTION = (
    "Submit, start, cancel, follow and download podcast runs. Every error is "
    '`{"error": {"code", "message", "details"}}`; see README.md, "HTTP API".'
)


class _QuietStartupFailure:
    """ASGI middleware: a start-up failure podflow explains (the store cannot be
    opened, a bad setting) reaches the server as one line, not a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def hold_failure(message: Message) -> None:
            nonlocal held
            if message["type"] == "lifespan.startup.failed":
                held = message
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except PodflowError as exc:
            if held is None:
                raise
            await send({"type": "lifespan.startup.failed", "message": f"podflow API cannot start: {exc}"})
            raise
        except BaseException:
            if held is not None:
                await send(held)
            raise


def _check_unique(endpoints: Sequence[Endpoint]) -> None:
    seen: dict[Any, Endpoint] = {}
    for endpoint in endpoints:
        for key in ((endpoint.method, endpoint.path), endpoint.operation_id):
            if key in seen:
                raise ValueError(f"{key} is declared twice ({endpoint.handler} and {seen[key].handler})")
            seen[key] = endpoint


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    dispatcher: Dispatcher | None = None,
    clock: Callable[[], datetime] = utcnow,
    events_interval_s: float = 0.5,
    keepalive_s: float = 15.0,
    overview_ttl_s: float = 1.0,
    tables: Sequence[RouteTable] = ROUTE_TABLES,
) -> Starlette:
    """The API app for ``settings``.

    Its lifespan opens the store (unless ``store`` is given) and the dispatcher
    (unless ``dispatcher`` is given: the queue-mode broker, or the thread-mode
    pool, started), and closes what it opened on shutdown.
    ``events_interval_s`` and ``keepalive_s`` pace Server-Sent Events (one shared
    poller per process, :mod:`api.watch`); the dashboard's overview is computed
    at most once per ``overview_ttl_s`` for all its browsers (:mod:`api.recent`).

    Raises:
      ConfigError: thread mode, and PODFLOW_GENERATOR cannot be loaded.
    """
    generator = load_generator(settings.generator) if settings.mode == "thread" and dispatcher is None else None
    endpoints = [endpoint for table in tables for endpoint in table.endpoints]
    _check_unique(endpoints)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stack = contextlib.ExitStack()
        try:
            app.state.podflow = await run_in_threadpool(
                partial(
                    open_services,
                    settings,
                    stack,
                    store=store,
                    dispatcher=dispatcher,
                    generator=generator,
                    clock=clock,
                    events_interval_s=events_interval_s,
                    keepalive_s=keepalive_s,
                    overview_ttl_s=overview_ttl_s,
                )
            )
            yield
        finally:
            opened = getattr(app.state, "podflow", None)
            if opened is not None:
                await opened.watcher.close()
            await run_in_threadpool(stack.close)

    allow = allowed_methods(endpoints)
    guarded = [
        e.route(prefix=API_PREFIX, allow=allow[e.path]) for e in endpoints if e.path.startswith(API_PREFIX + "/")
    ]
    auth = [Middleware(BearerAuth, token=settings.auth_token)] if settings.auth_token else []
    routes: list[BaseRoute] = [
        e.route(middleware=auth if e.private else (), allow=allow[e.path])
        for e in endpoints
        if not e.path.startswith(API_PREFIX + "/")
    ]
    routes.append(Mount(API_PREFIX, app=Router(guarded, redirect_slashes=False), middleware=auth))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_QuietStartupFailure), Middleware(DrainUnreadBody, max_bytes=drain_limit(settings))],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # an API answers 404, not a redirect, for a stray slash
    app.state.openapi = build_spec(
        endpoints, auth=bool(settings.auth_token), title="podflow", version=__version__, description=DESCRIPTION
    )
    return app


def mounted_routes(app: Starlette) -> set[tuple[str, str]]:
    """Every (method, path) ``app`` serves, mounts included (HEAD left out)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Sequence[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            else:
                for method in getattr(route, "methods", None) or ():
                    if method != "HEAD":
                        found.add((method, spec_path(prefix + getattr(route, "path", ""))))

    walk(app.routes, "")
    return found


#: uvicorn's loggers; under ``uvicorn api.app:app`` they have handlers of their own
#: (uvicorn's logging config, applied before the app is loaded)
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _load_app() -> Starlette:
    settings = boot()
    # uvicorn's lines in podflow's format too (PODFLOW_LOG_FORMAT=json: one object per
    # line); under `podflow api` they reach podflow's root handler and these have none
    for name in _UVICORN_LOGGERS:
        logformat.install(logging.getLogger(name).handlers, settings.log_format)
    with config_errors():  # thread mode: PODFLOW_GENERATOR is loaded here
        return create_app(settings)


def __getattr__(name: str) -> Any:
    """``app``, built on first access (see the module docstring)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = globals()["app"] = _load_app()
    return built
