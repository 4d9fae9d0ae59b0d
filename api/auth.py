"""Bearer-token auth for everything under ``/api/`` (when PODFLOW_API_TOKEN is set).

:class:`BearerAuth` wraps the ``/api`` mount, so every route under it, and any
route added to it later, requires ``Authorization: Bearer <token>``; ``/healthz``,
``/readyz`` and ``/openapi.json`` stay open. The token is compared in constant
time. A refusal raises :class:`api.errors.Unauthorized`, which the app's
exception handlers turn into a 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import Unauthorized

__all__ = ["BearerAuth", "check_bearer"]


def check_bearer(authorization: str | None, token: str) -> None:
    """Raises Unauthorized unless ``authorization`` is ``Bearer <token>``."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("this API requires an Authorization: Bearer <token> header", invalid=False)
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise Unauthorized("invalid bearer token", invalid=True)


class BearerAuth:
    """ASGI middleware: refuse HTTP requests without the bearer ``token``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            check_bearer(Headers(scope=scope).get("authorization"), self.token)
        await self.app(scope, receive, send)
