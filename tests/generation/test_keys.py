"""Stage keys: an input changes the keys of exactly the stages that depend on it.

The outline, the transcript and each clip are checkpoints under their job's
``key()``; a key that changes is a stage computed again, one that does not is
reused. So each case below changes one input and names the stages whose keys
change, no more and no fewer. The transcript's turns and the outline are held
fixed here: a recomputed transcript with new text gives its clips new keys
through their text (the case "a turn's text").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from podflow.generation.base import GenerationRequest
from podflow.generation.builtin import _clips
from podflow.generation.keys import input_key
from podflow.generation.outline import Outline, Segment
from podflow.generation.providers import Endpoint, Provider
from podflow.generation.transcript import Transcript, Turn
from podflow.generation.voices import EspeakVoice, ProviderVoice, Voice
from podflow.generation.writers import OutlineJob, TranscriptJob, Writer
from podflow.generation.writers.extractive import ExtractiveWriter
from podflow.generation.writers.llm import LLMWriter
from podflow.models import Source
from tests.generation.conftest import NOTES, generation_request, make_source

SOURCES = [make_source()]  # once: each ingest gives a source a new id


def episode(*, sources: list[Source] | None = None, **overrides: Any) -> GenerationRequest:
    """A request for tech_news and dual_host (Alex, Jordan) over SOURCES, overridden."""
    return generation_request(sources=sources or SOURCES, **overrides)


REQUEST = episode()
OUTLINE = Outline(
    episode_name=REQUEST.episode_name,
    requested_segments=1,
    segments=(Segment(1, "Reusable boosters", ("src",), ("The booster landed.",), ()),),
)
TURNS = (
    Turn("Alex", "Welcome to the Weekly Roundup.", "intro"),
    Turn("Jordan", "Thanks, Alex.", "intro"),
    Turn("Alex", "Goodbye.", "outro"),
)
ALL_CLIPS = {"clip 0", "clip 1", "clip 2"}
UPSTREAM = {"outline", "transcript"}


def _writer(llm: str, model: str) -> Writer:
    if llm == "none":
        return ExtractiveWriter()
    endpoint = Endpoint(kind="llm", base_url="http://127.0.0.1:9/v1", model=model)
    return LLMWriter(provider=Provider(endpoint=endpoint))  # no call is made: no connection


def _voice(tts: str, model: str) -> Voice:
    if tts == "espeak":
        return EspeakVoice(timeout_s=30, parallelism=1)
    endpoint = Endpoint(kind="tts", base_url="http://127.0.0.1:9/v1", model=model)
    return ProviderVoice(provider=Provider(endpoint=endpoint), parallelism=1)


def stage_keys(
    request: GenerationRequest = REQUEST,
    *,
    llm: str = "openai",
    llm_model: str = "gpt-x",
    tts: str = "openai",
    tts_model: str = "tts-x",
    outline: Outline = OUTLINE,
    turns: tuple[Turn, ...] = TURNS,
) -> dict[str, str]:
    """Every stage's key for ``request`` as the built-in generator derives them
    (``llm_model``/``tts_model``: PODFLOW_LLM_MODEL/PODFLOW_TTS_MODEL)."""
    writer = _writer(llm, llm_model)
    outline_job = OutlineJob.of(request, writer=writer.name, model=writer.model_for(request.episode_profile))
    transcript_job = TranscriptJob(outline_job, outline, request.speaker_profile)
    transcript = Transcript(
        episode_name=request.episode_name,
        speakers=request.speaker_profile,
        segments=outline.segments,
        turns=turns,
        language=request.episode_profile.language,
    )
    clips = _clips(transcript, _voice(tts, tts_model))
    return {
        "outline": outline_job.key(),
        "transcript": transcript_job.key(),
        **{f"clip {i}": clip.key() for i, clip in enumerate(clips)},
    }


def speakers(**update: object) -> GenerationRequest:
    """REQUEST with its speaker profile updated."""
    return dataclasses.replace(REQUEST, speaker_profile=REQUEST.speaker_profile.model_copy(update=update))


def jordan(**update: str) -> GenerationRequest:
    """REQUEST with its second speaker, Jordan, updated."""
    alex, guest = REQUEST.speaker_profile.speakers
    return speakers(speakers=[alex, guest.model_copy(update=update)])


CASES: dict[str, tuple[Callable[[], dict[str, str]], set[str]]] = {
    # what the writer reads: the outline, the transcript and (through their text) the clips
    "PODFLOW_LLM_MODEL": (lambda: stage_keys(llm_model="gpt-y"), UPSTREAM),
    "the episode profile's llm_model": (lambda: stage_keys(episode(llm_model="gpt-z")), UPSTREAM),
    "PODFLOW_LLM": (lambda: stage_keys(llm="none"), UPSTREAM),
    "language": (lambda: stage_keys(episode(language="zh")), UPSTREAM),
    "num_segments": (lambda: stage_keys(episode(num_segments=2)), UPSTREAM),
    "words_per_segment": (lambda: stage_keys(episode(words_per_segment=300)), UPSTREAM),
    "the profile's briefing": (lambda: stage_keys(episode(default_briefing="Only rivers.")), UPSTREAM),
    "the run's briefing_suffix": (lambda: stage_keys(episode(briefing_suffix="Be kind.")), UPSTREAM),
    "the sources": (lambda: stage_keys(episode(sources=[make_source(NOTES, "notes.md")])), UPSTREAM),
    "the episode name": (lambda: stage_keys(episode(episode_name="Monday Notes")), UPSTREAM),
    # what the writer reads of the speakers: the transcript only
    "a speaker's personality": (lambda: stage_keys(jordan(personality="Sceptical guest.")), {"transcript"}),
    "another outline for the same inputs": (
        lambda: stage_keys(outline=dataclasses.replace(OUTLINE, requested_segments=2)),
        {"transcript"},
    ),
    # what only speaks: the clips, never the transcript or the outline
    "a speaker's voice": (lambda: stage_keys(jordan(voice="alloy")), {"clip 1"}),
    "the speaker profile's tts_model": (lambda: stage_keys(speakers(tts_model="tts-hd")), ALL_CLIPS),
    "PODFLOW_TTS_MODEL": (lambda: stage_keys(tts_model="tts-y"), ALL_CLIPS),
    "PODFLOW_TTS": (lambda: stage_keys(tts="espeak"), ALL_CLIPS),
    "a turn's text": (lambda: stage_keys(turns=(*TURNS[:2], Turn("Alex", "See you.", "outro"))), {"clip 2"}),
    # what no stage reads
    "the profiles' descriptions": (lambda: stage_keys(described()), set()),
}


def described() -> GenerationRequest:
    """REQUEST with new descriptions of both its profiles."""
    episode_profile = REQUEST.episode_profile.model_copy(update={"description": "Another description."})
    return dataclasses.replace(speakers(description="Another description."), episode_profile=episode_profile)


@pytest.mark.parametrize("change", CASES)
def test_a_changed_input_changes_the_keys_of_exactly_the_stages_that_depend_on_it(change: str) -> None:
    changed, expected = CASES[change]
    baseline, keys = stage_keys(), changed()
    assert keys.keys() == baseline.keys()
    assert {stage for stage in keys if keys[stage] != baseline[stage]} == expected


def test_espeak_has_no_model_so_a_profiles_tts_model_changes_no_key() -> None:
    assert stage_keys(speakers(tts_model="tts-hd"), tts="espeak") == stage_keys(tts="espeak")


def test_the_same_inputs_give_the_same_keys() -> None:
    assert stage_keys() == stage_keys(episode())
    assert len(set(stage_keys().values())) == len(stage_keys())  # no two stages share a key


def test_a_key_names_its_stage_and_is_a_digest_of_its_inputs() -> None:
    outline_key = stage_keys()["outline"]
    assert outline_key.startswith("outline-") and len(outline_key) == len("outline-") + 64
    assert input_key("clip", {"a": 1, "b": 2}) == input_key("clip", {"b": 2, "a": 1})  # canonical JSON
    assert input_key("clip", {"a": 1}) != input_key("outline", {"a": 1})
