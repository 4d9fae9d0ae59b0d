"""The OpenAPI document (open even when PODFLOW_API_TOKEN is set)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..routing import Media, RouteTable

__all__ = ["routes"]

routes = RouteTable("docs")


@routes.get("/openapi.json", {200: Media("application/json", {"type": "object"})})
def openapi(request: Request) -> Response:
    """This API's OpenAPI 3.1 document: every route, parameter, body and response."""
    return JSONResponse(request.app.state.openapi)
