from __future__ import annotations

import pytest
from pydantic import ValidationError

from podflow.models import FINGERPRINT_FIELDS, Run, RunRequest, Speaker, SpeakerProfile, is_run_id, new_run_id
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


def test_a_version_1_fingerprint_never_changes_so_stored_keys_stay_valid() -> None:
    # the hash runs were stored with before fingerprints had versions
    assert make_request().fingerprint() == "fcdd12c08978c8c2806606efb08d576194cada9f204866b152d4104b65a37659"
    assert make_request(briefing_suffix="Mention the weather.").fingerprint() == (
        "be8cc24ded2b692b5a3c004c04a013c65c78c311510cbabe7a55264e5464d28a"
    )
    assert FINGERPRINT_FIELDS[1] == (
        "episode_profile", "speaker_profile", "episode_name", "source_ids", "briefing_suffix",
    )  # fmt: skip


class _LaterRequest(RunRequest):
    """RunRequest as it might be once an optional field is added."""

    language: str | None = None


def test_an_optional_field_added_later_changes_only_the_requests_that_use_it() -> None:
    old = make_request()
    unset = _LaterRequest.model_validate(old.model_dump())
    assert unset.fingerprint() == old.fingerprint() and unset.matches(old.fingerprint())
    used = _LaterRequest.model_validate({**old.model_dump(), "language": "zh"})
    assert used.fingerprint() != old.fingerprint() and not used.matches(old.fingerprint())


def test_a_stored_hash_is_checked_under_the_version_it_was_made_with(monkeypatch: pytest.MonkeyPatch) -> None:
    request = make_request()
    v1 = request.fingerprint()
    monkeypatch.setitem(FINGERPRINT_FIELDS, 2, ("episode_profile", "episode_name"))
    v2 = request.fingerprint(2)
    assert v2.startswith("v2:") and v2 != v1
    assert request.matches(v1) and request.matches(v2)
    assert not request.matches("v3:" + v1) and not request.matches(None) and not request.matches("garbage")
