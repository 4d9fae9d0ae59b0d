"""The route table: each endpoint declared once, with all the OpenAPI spec says of it.

A route module makes a :class:`RouteTable` and declares its endpoints::

    routes = RouteTable("runs")

    @routes.get("/api/podcast/runs/{run_id}", {200: RunView})
    def get_run(request: Request, run_id: str) -> Response:
        \"\"\"Get a run.\"\"\"

:func:`api.app.create_app` serves every table's endpoints and
:func:`api.openapi.build_spec` describes the very same list, so a route cannot
be served undocumented. The summary and description come from the handler's
docstring (first line, then the rest).

A handler is called with the request, its path parameters by name, and
``query=`` / ``body=`` when the endpoint declares a query or a JSON body model:
both are parsed and validated first (an error is a 422 naming the field; a JSON
body is validated strictly, and over PODFLOW_MAX_JSON_BYTES it is a 413). Plain
functions run in Starlette's threadpool, since store and broker calls block;
``async`` handlers run on the event loop and must hand blocking work to
``run_in_threadpool``.

Several endpoints may share a path (``GET`` and ``POST /api/sources``): each is
its own Starlette route, and each answers a method its path does not serve with
a 405, and ``OPTIONS`` with a 204, whose ``Allow`` lists every method of the
path (:class:`PathRoute`), not only its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .limits import json_limit, read_json
from .schemas import validate, validate_json
from .services import services

__all__ = ["Content", "Endpoint", "Header", "Media", "PathRoute", "RouteTable", "allowed_methods"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Media:
    """A body that is not a JSON model: its media type and JSON schema."""

    media_type: str
    schema: dict[str, Any] = field(default_factory=dict)
    #: the models the schema refers to (``#/components/schemas/<name>``), which join the components
    models: tuple[type[BaseModel], ...] = ()


#: a response or request body: a JSON model, other media, or nothing (204)
Content = type[BaseModel] | Media | tuple[Media, ...] | None


@dataclass(frozen=True, slots=True)
class Header:
    """A request header an endpoint reads (documented; the handler parses it)."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Callable[..., Any]
    tag: str
    #: success status -> body
    responses: Mapping[int, Content]
    #: error statuses besides those every endpoint of its kind may answer (see api.openapi)
    errors: tuple[int, ...] = ()
    #: query parameters, validated into this model and passed as ``query=``
    query: type[BaseModel] | None = None
    #: a JSON body, validated into this model and passed as ``body=``
    body: type[BaseModel] | None = None
    #: a request body the handler reads itself: media type -> its model (documentation)
    content: Mapping[str, type[BaseModel]] | None = None
    headers: tuple[Header, ...] = ()
    name: str = ""
    summary: str = ""
    #: requires the bearer token (when one is set) although outside ``/api/`` (``/metrics``)
    private: bool = False
    #: kept for old clients only (the OpenAPI operation says ``deprecated``)
    deprecated: bool = False

    @property
    def operation_id(self) -> str:
        return self.name or self.handler.__name__

    @property
    def guarded(self) -> bool:
        """Requires the bearer token when PODFLOW_API_TOKEN is set: under ``/api/``, or private."""
        return self.private or self.path.startswith("/api/")

    @property
    def docs(self) -> tuple[str, str]:
        """(summary, description) from the declaration, else the handler's docstring."""
        doc = inspect.getdoc(self.handler) or ""
        first, _, rest = doc.partition("\n")
        return (self.summary or first.strip(), rest.strip() if not self.summary else "")

    def route(
        self, *, prefix: str = "", middleware: Sequence[Middleware] = (), allow: Collection[str] = ()
    ) -> PathRoute:
        """The Starlette route, its path relative to ``prefix`` (a Mount's);
        ``allow``: the methods of every endpoint of the path, for its ``Allow`` header."""
        return PathRoute(
            self.path.removeprefix(prefix),
            self._call,
            methods=[self.method],
            name=self.operation_id,
            middleware=middleware or None,
            allow=allow,
        )

    async def _call(self, request: Request) -> Response:
        kwargs: dict[str, Any] = dict(request.path_params)
        if self.query is not None:
            kwargs["query"] = validate(self.query, dict(request.query_params), where="query")
        if self.body is not None:
            body = await read_json(request, limit=json_limit(services(request).settings))
            kwargs["body"] = validate_json(self.body, body)
        if inspect.iscoroutinefunction(self.handler):
            response: Response = await self.handler(request, **kwargs)
        else:
            response = await run_in_threadpool(self.handler, request, **kwargs)
        return response


class PathRoute(Route):
    """A route that answers for its whole path: a method no endpoint of the path
    serves is a 405, and ``OPTIONS`` a 204, each with ``Allow`` listing the methods
    of every endpoint of the path (Starlette's own lists only the route's)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, allow: Collection[str] = (), **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        methods = {*allow, *(self.methods or ())}
        if "GET" in methods:
            methods.add("HEAD")
        self.allow = ", ".join(sorted({*methods, "OPTIONS"}))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await Response(status_code=204, headers={"Allow": self.allow})(scope, receive, send)
        elif self.methods and scope["method"] not in self.methods:
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        else:
            await super().handle(scope, receive, send)


def allowed_methods(endpoints: Sequence[Endpoint]) -> dict[str, set[str]]:
    """Every path's methods, over all ``endpoints``."""
    found: dict[str, set[str]] = {}
    for endpoint in endpoints:
        found.setdefault(endpoint.path, set()).add(endpoint.method)
    return found


class RouteTable:
    """The endpoints of one route module (``tag`` groups them in the spec)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(self, method: str, path: str, responses: Mapping[int, Content], **options: Any) -> Callable[[F], F]:
        def declare(handler: F) -> F:
            self.endpoints.append(
                Endpoint(method=method, path=path, handler=handler, tag=self.tag, responses=responses, **options)
            )
            return handler

        return declare

    def get(self, path: str, responses: Mapping[int, Content], **options: Any) -> Callable[[F], F]:
        return self.route("GET", path, responses, **options)

    def post(self, path: str, responses: Mapping[int, Content], **options: Any) -> Callable[[F], F]:
        return self.route("POST", path, responses, **options)

    def put(self, path: str, responses: Mapping[int, Content], **options: Any) -> Callable[[F], F]:
        return self.route("PUT", path, responses, **options)

    def delete(self, path: str, responses: Mapping[int, Content], **options: Any) -> Callable[[F], F]:
        return self.route("DELETE", path, responses, **options)
