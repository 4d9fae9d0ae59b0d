"""The OpenAPI document: complete, generated from the models, and honoured by the app (schemathesis)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from api.app import create_app
from api.openapi import REF
from api.schemas import ErrorBody, RunView
from tests.api.conftest import Api, finish_with_files, serve, settings_for

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


# -- schemathesis: the app honours the document -------------------------------------------
#
# Every operation is called with generated data (positive and negative: coverage, examples
# and fuzzing phases), then once more with real objects in its path and body (a fresh run,
# source or profile for each case, since a case may delete what it names), so that every
# operation also answers for something that exists. Speech is off (PODFLOW_TTS=none), so
# any generated voice is accepted and generated profiles are stored and read back.
# Hypothesis is derandomized: the same cases on every run.

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, allow_header_conformance]
#: the statuses each operation answered, over the run (test_every_operation_was_exercised)
ANSWERED: dict[str, set[int]] = {}
FINISHED_RUN_OPERATIONS = {"run_audio", "run_transcript", "run_outline", "run_events", "get_task"}


def operation_id(case: Any) -> str:
    return str(SPEC["paths"][case.path][case.method.lower()]["operationId"])


class Known:
    """Real objects for a case's path parameters and for the references in its body."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.source_id = api.source()
        self.finished = api.submit()  # SUCCESS, with every file: results and events answer 200
        finish_with_files(api, self.finished["run_id"], audio="", transcript="{}", outline="{}")

    def run_request(self, **overrides: str) -> dict[str, Any]:
        """A submit body naming real profiles (the bundled ones, unless ``overrides`` say) and a real source."""
        real = {"episode_profile": "tech_news", "speaker_profile": "dual_host", "source_ids": [self.source_id]}
        return real | {"episode_name": "known"} | overrides

    def _draft(self) -> dict[str, Any]:
        response = self.api.client.post("/api/podcast/runs", json=self.run_request())
        assert response.status_code == 201, response.text
        return dict(response.json())

    def _profile(self, kind: str) -> str:
        name = f"known-{uuid.uuid4().hex[:12]}"
        response = self.api.client.post(f"/api/podcast/{kind}-profiles", json={**PROFILES[kind], "name": name})
        assert response.status_code == 201, response.text
        return name

    def path_parameters(self, case: Any) -> dict[str, str]:
        operation = operation_id(case)
        values: dict[str, str] = {}
        for name in case.path_parameters:
            if name == "run_id" and operation in FINISHED_RUN_OPERATIONS:
                values[name] = self.finished["run_id"]
            elif name == "run_id":
                run_id = self._draft()["run_id"]
                if operation == "retry_run":  # only a finished run can be retried
                    assert self.api.client.post(f"/api/podcast/runs/{run_id}/cancel").status_code == 200
                values[name] = run_id
            elif name == "message_id" and operation == "requeue_dead":
                from tests.worker.test_deadletter import dead_letter

                broker = self.api.app.state.podflow.broker
                broker.declare_queue("podcast")
                values[name] = dead_letter(broker, self.finished["run_id"]).message_id
            elif name in ("message_id", "celery_task_id"):
                values[name] = self.finished["message_id"]
            elif name == "source_id":
                values[name] = self.api.source(f"A source of its own: {uuid.uuid4()}")
            elif name == "name":
                values[name] = self._profile("episode" if "episode" in case.path else "speaker")
            elif name == "queue":
                values[name] = "podcast"
            elif name == "asset":
                values[name] = "dashboard.js"
            else:
                raise AssertionError(f"no real value for {{{name}}} in {case.path}: add one")
        return values

    def body(self, body: Any) -> Any:
        """``body`` naming real profiles and sources where it names any."""
        if not isinstance(body, dict):
            return body
        references = {key: value for key, value in self.run_request().items() if key != "episode_name"}
        return {**body, **{key: value for key, value in references.items() if key in body}}


PROFILES: dict[str, dict[str, Any]] = {
    "episode": {"num_segments": 2},
    "speaker": {"speakers": [{"name": "Ada", "voice": "en-us", "personality": "Curious."}]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    url = redis_server.url.rsplit("/", 1)[0] + "/2"  # its own database: the per-test fixture flushes 0
    with serve(create_app(settings_for(data_dir, broker_url=url, tts="none"))) as api:
        yield api


@pytest.fixture(scope="module")
def known(served: Api) -> Known:
    return Known(served)


def read_back(api: Api, known: Known, case: Any, response: Any) -> None:
    """A profile just stored lists, reads back as it was answered, and a run can use it."""
    kind = "episode" if "episode" in case.path else "speaker"
    listing = api.client.get(f"/api/podcast/{kind}-profiles")
    assert listing.status_code == 200, listing.text
    profile = response.json()
    assert api.client.get(f"/api/podcast/{kind}-profiles/{profile['name']}").json() == profile
    submitted = api.client.post("/api/podcast/generate", json=known.run_request(**{f"{kind}_profile": profile["name"]}))
    assert submitted.status_code == 202, submitted.text


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_app_honours_its_openapi_document(case: Any, served: Api, known: Known) -> None:
    operation = operation_id(case) if case.method.lower() in SPEC["paths"][case.path] else None
    answered = case.call_and_validate(
        base_url=served.url, checks=[*CHECKS, negative_data_rejection, unsupported_method]
    )
    if operation is not None:
        ANSWERED.setdefault(operation, set()).add(answered.status_code)
    if operation is None or (case.meta is not None and case.meta.generation.mode.is_negative):
        return  # refused before anything is looked up: real objects would change nothing
    case.path_parameters = known.path_parameters(case)
    case.body = known.body(case.body)
    answered = case.call_and_validate(base_url=served.url, checks=CHECKS)
    ANSWERED[operation].add(answered.status_code)
    if operation.startswith(("create_", "replace_")) and "profile" in operation and answered.status_code < 300:
        read_back(served, known, case, answered)


def test_every_operation_was_exercised_and_succeeded() -> None:
    if len(ANSWERED) < len(OPERATIONS):
        pytest.skip("run with the schemathesis tests above (the whole module)")
    assert {op["operationId"] for _, _, op in OPERATIONS} == set(ANSWERED)
    failed = {operation: sorted(statuses) for operation, statuses in ANSWERED.items() if min(statuses) >= 300}
    assert not failed, f"never answered 2xx: {failed}"


def with_whitespace(value: Any, data: st.DataObject) -> Any:
    """``value`` with each text in it kept, made whitespace only, or padded with whitespace."""
    if isinstance(value, str):
        return data.draw(st.sampled_from([value, " ", " \t\n ", "\u3000", f" {value}\u3000"]))
    if isinstance(value, list):
        return [with_whitespace(item, data) for item in value]
    if isinstance(value, dict):
        return {key: with_whitespace(item, data) for key, item in value.items()}
    return value


@pytest.mark.parametrize("kind", ["episode", "speaker"])
@given(data=st.data())
@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_a_profile_with_whitespace_text_is_refused_or_stored_as_it_reads_back(
    served: Api, known: Known, kind: str, data: st.DataObject
) -> None:
    case = data.draw(schema[f"/api/podcast/{kind}-profiles"]["POST"].as_strategy())
    case.body = with_whitespace(case.body, data)
    answered = case.call_and_validate(base_url=served.url, checks=CHECKS)
    assert answered.status_code in (201, 409, 422), answered.text
    if answered.status_code == 201:
        read_back(served, known, case, answered)
    else:
        assert served.client.get(f"/api/podcast/{kind}-profiles").status_code == 200
