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
body over 1 MiB is a 413). Plain functions run in Starlette's threadpool, since
store and broker calls block; ``async`` handlers run on the event loop and must
hand blocking work to ``run_in_threadpool``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .limits import read_json
from .schemas import validate

__all__ = ["Content", "Endpoint", "Header", "Media", "RouteTable"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Media:
    """A body that is not a JSON model: its media type and JSON schema."""

    media_type: str
    schema: dict[str, Any] = field(default_factory=dict)


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

    def route(self, *, prefix: str = "", middleware: Sequence[Middleware] = ()) -> Route:
        """The Starlette route, its path relative to ``prefix`` (a Mount's)."""
        return Route(
            self.path.removeprefix(prefix),
            self._call,
            methods=[self.method],
            name=self.operation_id,
            middleware=middleware or None,
        )

    async def _call(self, request: Request) -> Response:
        kwargs: dict[str, Any] = dict(request.path_params)
        if self.query is not None:
            kwargs["query"] = validate(self.query, dict(request.query_params), where="query")
        if self.body is not None:
            kwargs["body"] = validate(self.body, await read_json(request))
        if inspect.iscoroutinefunction(self.handler):
            response: Response = await self.handler(request, **kwargs)
        else:
            response = await run_in_threadpool(self.handler, request, **kwargs)
        return response


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
