"""The dashboard's files: served open (they hold no data), with a strict CSP, and nothing from elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from api.routes.dashboard import ASSETS, STATIC
from tests.api.conftest import Api, error, serve, settings_for


def test_the_page_and_its_assets_are_served_without_the_token(tmp_path: Path, redis_url: str) -> None:
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url, api_token="t0ken"))) as api:
        page = api.client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert "dashboard/dashboard.js" in page.text and "dashboard/dashboard.css" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "media-src 'self' blob:" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        script = api.client.get("/dashboard/dashboard.js")
        assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert api.client.get("/dashboard/dashboard.css").headers["content-type"] == "text/css; charset=utf-8"


def test_only_the_dashboard_files_are_served(api: Api) -> None:
    for name in ("index.html", "..%2F..%2Fapp.py", "missing.js", "dashboard.JS"):
        error(api.client.get(f"/dashboard/{name}"), 404, "not_found")
    assert sorted(p.name for p in STATIC.iterdir()) == sorted([*ASSETS, "index.html"])


def test_the_dashboard_loads_nothing_from_elsewhere_and_never_uses_inner_html() -> None:
    texts = {path.name: path.read_text(encoding="utf-8") for path in STATIC.iterdir()}
    for name, text in texts.items():
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}"
    script = texts["dashboard.js"]
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    assert "Authorization" in script and "sessionStorage" in script
