"""The OpenAPI document: complete, generated from the models, and honoured by the app (schemathesis)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from api.app import create_app
from api.openapi import REF
from api.schemas import ErrorBody, RunView
from tests.api.conftest import Api, serve, settings_for

# the document does not depend on where the data lives; only on whether auth is on
SPEC = create_app(settings_for(Path("unused"))).state.openapi
schema = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = [(path, method, op) for path, ops in SPEC["paths"].items() for method, op in ops.items()]


def test_the_document_is_openapi_3_1_with_an_id_and_summary_for_every_operation() -> None:
    assert SPEC["openapi"] == "3.1.0" and SPEC["info"]["title"] == "podflow"
    assert len({op["operationId"] for _, _, op in OPERATIONS}) == len(OPERATIONS)
    assert all(op["summary"] and op["tags"] for _, _, op in OPERATIONS)


def test_every_error_response_is_the_one_error_shape() -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, op in OPERATIONS:
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": error_ref}}, (path, method, status)
    assert SPEC["paths"]["/api/podcast/generate"]["post"]["responses"]["503"]["headers"]["Retry-After"]


def test_the_component_schemas_are_the_models_own() -> None:
    components = SPEC["components"]["schemas"]
    for model in (RunView, ErrorBody):
        generated = model.model_json_schema(mode="serialization", ref_template=REF)
        for name, definition in generated.pop("$defs", {}).items():
            assert components[name] == definition
        assert components[model.__name__] == generated


def test_parameters_are_documented_with_their_constraints() -> None:
    for path, _, op in OPERATIONS:
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert documented == set(re.findall(r"{(\w+)}", path))
    listing = {p["name"]: p for p in SPEC["paths"]["/api/podcast/runs"]["get"]["parameters"]}
    assert listing["limit"]["schema"] | {"title": ""} == {
        "type": "integer", "minimum": 1, "maximum": 200, "default": 50, "title": ""
    }
    # an optional parameter is left out, never sent as null
    assert listing["status"]["schema"] == {"$ref": "#/components/schemas/RunStatus"}
    assert not listing["status"]["required"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    url = redis_server.url.rsplit("/", 1)[0] + "/2"  # its own database: the per-test fixture flushes 0
    with serve(create_app(settings_for(data_dir, broker_url=url))) as api:
        api.source()
        yield api


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_app_honours_its_openapi_document(case: Any, served: Api) -> None:
    case.call_and_validate(
        base_url=served.url, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
    )
