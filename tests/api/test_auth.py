"""Bearer-token auth: every /api/ route when PODFLOW_API_TOKEN is set; health and docs stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from api.auth import check_bearer
from api.errors import Unauthorized
from tests.api.conftest import Api, error, serve, settings_for

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(tmp_path: Path, redis_url: str) -> Iterator[Api]:
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url, api_token=TOKEN))) as api:
        yield api


def test_an_api_route_without_the_token_is_a_401_with_a_bearer_challenge(guarded: Api) -> None:
    for path in ("/api/podcast/runs", "/api/sources", "/api/podcast/episode-profiles", "/api/nope"):
        response = guarded.client.get(path)
        assert "Authorization: Bearer" in error(response, 401, "unauthorized")["message"]
        assert response.headers["www-authenticate"] == 'Bearer realm="podflow"'
    posted = guarded.client.post("/api/podcast/generate", json={})
    error(posted, 401, "unauthorized")  # refused before the body is even read


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer s3cret", f"Basic {TOKEN}", "Bearer"])
def test_a_wrong_token_or_scheme_is_a_401(guarded: Api, header: str) -> None:
    response = guarded.client.get("/api/podcast/runs", headers={"Authorization": header})
    error(response, 401, "unauthorized")


def test_the_right_token_opens_every_api_route(guarded: Api) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.client.get("/api/podcast/runs", headers=headers).status_code == 200
    assert guarded.client.get("/api/podcast/runs", headers={"Authorization": f"bearer  {TOKEN}"}).status_code == 200
    error(guarded.client.get("/api/nope", headers=headers), 404, "not_found")


def test_health_and_the_openapi_document_stay_open_and_the_document_says_so(guarded: Api) -> None:
    assert guarded.client.get("/healthz").status_code == 200
    assert guarded.client.get("/readyz").status_code == 200
    spec = guarded.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    operations = [op for path, ops in spec["paths"].items() for op in ops.values() if path.startswith("/api/")]
    assert all(op["security"] == [{"bearerAuth": []}] and "401" in op["responses"] for op in operations)
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_without_a_token_everything_is_open(api: Api) -> None:
    assert api.client.get("/api/podcast/runs").status_code == 200
    spec = api.client.get("/openapi.json").json()
    assert "securitySchemes" not in spec["components"]
    assert "401" not in spec["paths"]["/api/podcast/runs"]["get"]["responses"]


def test_the_token_is_compared_whole() -> None:
    check_bearer(f"Bearer {TOKEN}", TOKEN)
    for header in (None, "", TOKEN, f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}"):
        with pytest.raises(Unauthorized):
            check_bearer(header, TOKEN)
