from __future__ import annotations

import pytest
from pydantic import ValidationError

from podflow.models import Run, RunRequest, Speaker, SpeakerProfile, is_run_id, new_run_id
from tests.conftest import T0, make_request


def test_run_ids_are_unguessable_hex() -> None:
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_run_id(i) for i in ids)


def test_a_new_run_is_pending_with_its_creation_in_the_history() -> None:
    run = Run.new(make_request(), now=T0, idempotency_key="k")
    assert run.status == "PENDING" and run.attempt == 0 and run.history[0].reason == "created"
    assert run.request == make_request() and run.request_hash == make_request().fingerprint()


def test_timestamps_serialize_as_iso_8601_utc() -> None:
    run = Run.new(make_request(), now=T0)
    assert run.model_dump(mode="json")["created_at"] == "2026-01-01T12:00:00Z"


def test_the_fingerprint_tells_bodies_apart() -> None:
    assert make_request().fingerprint() == make_request().fingerprint()
    assert make_request().fingerprint() != make_request(episode_name="Other").fingerprint()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source_ids": []}, "source_ids"),
        ({"source_ids": ["a", "a"]}, "source_ids"),
        ({"episode_name": "   "}, "episode_name"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_requests_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        RunRequest.model_validate({**make_request().model_dump(), **overrides})
    assert err.value.errors()[0]["loc"][0] == field


def test_speaker_names_must_be_unique_within_a_profile() -> None:
    with pytest.raises(ValidationError, match="unique"):
        SpeakerProfile(
            name="dup",
            speakers=[
                Speaker(name="Ada", voice="en", personality="x"),
                Speaker(name="ada", voice="en", personality="y"),
            ],
        )
