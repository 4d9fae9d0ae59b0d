"""The route table as served: a 405 and OPTIONS list every method of the path, whichever route answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from tests.api.conftest import Api, error, serve, settings_for

SPEC = create_app(settings_for(Path("unused"))).state.openapi
#: every path with the methods the document gives it
PATHS = {path: {method.upper() for method in ops} for path, ops in SPEC["paths"].items()}


def allow(methods: set[str]) -> str:
    return ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set()) | {"OPTIONS"}))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = settings_for(tmp_path_factory.mktemp("routing"), broker_url="redis://127.0.0.1:1/0")
    with serve(create_app(settings)) as api:
        yield api


def test_several_routes_share_the_paths_the_issue_names() -> None:
    assert PATHS["/api/podcast/episode-profiles"] == {"GET", "POST"}
    assert PATHS["/api/podcast/runs"] == {"GET", "POST"}
    assert PATHS["/api/sources"] == {"GET", "POST"}
    assert PATHS["/api/podcast/runs/{run_id}"] == {"GET", "DELETE"}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_405_and_options_list_every_method_of_the_path(served: Api, path: str) -> None:
    url = re.sub(r"{\w+}", "x", path)
    expected = allow(PATHS[path])
    options = served.client.options(url)
    assert options.status_code == 204 and options.headers["allow"] == expected
    wrong = served.client.request("PATCH", url)
    assert error(wrong, 405, "method_not_allowed")["message"] == f"PATCH is not allowed on {url}; allowed: {expected}"
    assert wrong.headers["allow"] == expected
