"""The web dashboard: one HTML page and its script and stylesheet, shipped with podflow.

The page holds no data and is served without auth; its script calls the
``/api/`` routes with the bearer token the user types once (kept in the
browser's ``sessionStorage``). Everything is served from ``api/static/dashboard/``:
no CDN, no fonts, no framework. A strict Content-Security-Policy allows only
these files, same-origin requests and ``blob:`` audio.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from podflow.errors import NotFound

from ..routing import Media, RouteTable

__all__ = ["ASSETS", "routes"]

routes = RouteTable("dashboard")

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"
#: the files the dashboard may load, by name -> media type (nothing else is served)
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class AssetNotFound(NotFound):
    kind = "dashboard asset"


@routes.get("/dashboard", {200: Media("text/html", {"type": "string"})})
def dashboard(request: Request) -> Response:
    """The monitoring dashboard (HTML; open: it holds no data, its script asks for the token)."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@routes.get(
    "/dashboard/{asset}",
    {200: (Media("text/javascript", {"type": "string"}), Media("text/css", {"type": "string"}))},
    name="dashboard_asset",
)
def asset(request: Request, asset: str) -> Response:
    """The dashboard's script or stylesheet (`dashboard.js`, `dashboard.css`)."""
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise AssetNotFound(asset)
    return FileResponse(STATIC / asset, media_type=f"{media_type}; charset=utf-8", headers=HEADERS)
