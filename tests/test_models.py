from __future__ import annotations

import enum
import types
import typing
from datetime import datetime
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

import api.schemas
import podflow.models
import podflow.views
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
# -- the text audit: every str field of every model and API schema ---------------------
#
# The rule (podflow.models): text is stripped before its length or pattern is checked,
# so what validates is what is stored and it validates again when read back. The walk
# below finds the fields itself, so a field or model added later is held to the rule.

MODULES = (podflow.models, podflow.views, api.schemas)
MODELS = sorted(
    {
        cls
        for module in MODULES
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, BaseModel)
        and cls.__module__ == module.__name__ and cls.model_fields
    },
    key=lambda cls: cls.__name__,
)
WHITESPACE = (" ", " \t\n ", "\u3000", "\u00a0\u2003")  # ASCII, and the wide spaces of CJK and typeset text
#: values the generic example builder cannot guess (a field whose "x" does not validate)
OVERRIDES: dict[tuple[str, str], Any] = {}
#: text the audit pads and blanks, for a field whose pattern refuses "x"
TEXT_SAMPLES: dict[str, str] = {"language": "pt-BR", "callback_url": "http://h/", "url": "http://h/"}


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """``annotation`` without ``Annotated`` and ``| None``, and the metadata found on the way."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = options[0]
        else:
            return annotation, metadata


def _text_slot(annotation: Any) -> tuple[str, list[Any]] | None:
    """Where a field holds text: ``"value"``, ``"item"`` (of a list) or ``"entry"`` (of a
    dict), and the constraints on that text; None when it holds none."""
    inner, metadata = _unwrap(annotation)
    if inner is str:
        return "value", metadata
    if typing.get_origin(inner) is list:
        item, item_metadata = _unwrap(typing.get_args(inner)[0])
        return ("item", item_metadata) if item is str else None
    if typing.get_origin(inner) is dict and _unwrap(typing.get_args(inner)[1])[0] is str:
        return "entry", []
    return None


def _constraint(metadata: list[Any], name: str) -> Any:
    found = [getattr(m, name) for m in metadata if getattr(m, name, None) is not None]
    for m in metadata:  # a FieldInfo nested in Annotated (list items) keeps its own
        if isinstance(m, FieldInfo):
            found += [getattr(inner, name) for inner in m.metadata if getattr(inner, name, None) is not None]
    return found[0] if found else None


def _sample(annotation: Any, metadata: list[Any]) -> Any:
    """A valid value for a field of this type (the smallest the constraints allow)."""
    inner, more = _unwrap(annotation)
    metadata = [*metadata, *more]
    origin = typing.get_origin(inner)
    if inner is str:
        return "x"
    if inner is bool:
        return False
    if inner in (int, float):
        return _constraint(metadata, "ge") or (_constraint(metadata, "gt") or 0) + 1
    if inner is bytes:
        return b"x"
    if inner is datetime:
        return T0
    if origin is Literal:
        return typing.get_args(inner)[0]
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return next(iter(inner))
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return example(inner)
    if origin is list:
        count = _constraint(metadata, "min_length") or 0
        return [_sample(typing.get_args(inner)[0], []) for _ in range(count)]
    if origin is dict or inner is Any:
        return {}
    raise AssertionError(f"no sample for {annotation!r}: add one to OVERRIDES")


def example(model: type[BaseModel]) -> dict[str, Any]:
    """The required fields of ``model`` with the smallest valid values."""
    return {
        name: OVERRIDES.get((model.__name__, name), _sample(field.annotation, field.metadata))
        for name, field in model.model_fields.items()
        if field.is_required()
    }


def _placed(slot: str, text: str) -> Any:
    return {"value": text, "item": [text], "entry": {"k": text}}[slot]


def _read(model: type[BaseModel], name: str, slot: str, data: dict[str, Any]) -> Any:
    value = getattr(model.model_validate(data), name)
    if slot == "item":
        return value[0]
    return value["k"] if slot == "entry" else value


TEXT_FIELDS = [
    pytest.param(model, name, slot, metadata, id=f"{model.__name__}.{name}")
    for model in MODELS
    for name, field in model.model_fields.items()
    if (found := _text_slot(field.annotation)) is not None
    for slot, metadata in [(found[0], [*field.metadata, *found[1]])]
]


def test_the_audit_walks_every_model_and_their_text_fields() -> None:
    names = {model.__name__ for model in MODELS}
    assert {"RunRequest", "Run", "Speaker", "SpeakerProfile", "EpisodeProfile", "SourceCreate", "RunView"} <= names
    for model in MODELS:
        model.model_validate(example(model))  # every model has a valid example to vary
    walked = {param.id for param in TEXT_FIELDS}
    assert {"Speaker.personality", "RunRequest.source_ids", "Source.text", "Readiness.checks"} <= walked


@pytest.mark.parametrize(("model", "name", "slot", "metadata"), TEXT_FIELDS)
def test_every_text_field_is_stripped_before_it_is_checked_and_reads_back(
    model: type[BaseModel], name: str, slot: str, metadata: list[Any]
) -> None:
    base = example(model)
    verbatim = any(getattr(m, "strip_whitespace", None) is False for m in metadata)
    min_length = _constraint(metadata, "min_length") or (1 if _constraint(metadata, "pattern") else 0)
    max_length = _constraint(metadata, "max_length")

    def check(text: str) -> Any:
        """``text`` in the field: what it reads as, and a second validation of what
        would be stored (its JSON dump) gives the same."""
        data = {**base, name: _placed(slot, text)}
        stored = model.model_validate(data).model_dump_json()
        assert model.model_validate_json(stored) == model.model_validate(data), "what is stored reads back the same"
        return _read(model, name, slot, data)

    sample = TEXT_SAMPLES.get(name, "x")
    assert check(f" {sample} \t") == (f" {sample} \t" if verbatim else sample), "stripped before it is stored"
    if max_length and not verbatim and not _constraint(metadata, "pattern"):
        longest = sample + "x" * (max_length - len(sample))
        assert check(" " + longest + " ") == longest, "stripped before the length is checked"
    for blank in WHITESPACE:
        if min_length and not verbatim:
            with pytest.raises(ValidationError) as refused:
                model.model_validate({**base, name: _placed(slot, blank)})
            assert refused.value.errors()[0]["loc"][0] == name, "the error names the field"
        else:
            assert check(blank) == (blank if verbatim else ""), "whitespace-only text reads back as stored"
