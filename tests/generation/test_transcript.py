"""The transcript: turn-taking among the profile's speakers, from the outline."""

from __future__ import annotations

import json

import pytest

from podflow.generation.outline import build_outline
from podflow.generation.text import words
from podflow.generation.transcript import build_transcript
from tests.generation.conftest import generation_request


def transcript_for(**kw: object):  # type: ignore[no-untyped-def]
    request = generation_request(**kw)  # type: ignore[arg-type]
    outline = build_outline(request)
    return request, outline, build_transcript(request, outline)


@pytest.mark.parametrize("speakers", ["dual_host", "solo", "panel"])
def test_only_the_profiles_speakers_talk_and_everyone_does(speakers: str) -> None:
    request, _, transcript = transcript_for(speakers=speakers)
    names = [s.name for s in request.speaker_profile.speakers]
    assert {t.speaker for t in transcript.turns} == set(names)


@pytest.mark.parametrize("speakers", ["dual_host", "panel"])
def test_speakers_take_turns(speakers: str) -> None:
    _, _, transcript = transcript_for(speakers=speakers)
    pairs = zip(transcript.turns, transcript.turns[1:], strict=False)
    assert all(a.speaker != b.speaker for a, b in pairs)


def test_the_host_opens_with_the_episode_name_and_closes_the_show() -> None:
    _, outline, transcript = transcript_for()
    first, last = transcript.turns[0], transcript.turns[-1]
    assert first.part == "intro" and first.speaker == "Alex"
    assert first.text.startswith("Welcome to Weekly Roundup. I'm Alex. With me today: Jordan.")
    assert all(s.title in first.text for s in outline.segments)
    assert last.part == "outro" and last.speaker == "Alex" and "goodbye" in last.text
    parts = [t.part for t in transcript.turns]
    assert parts == sorted(parts, key=["intro", "segment", "outro"].index)


def test_every_key_point_of_the_sources_is_spoken_in_its_segment() -> None:
    _, outline, transcript = transcript_for()
    for segment in outline.segments:
        spoken = " ".join(t.text for t in transcript.turns if t.segment == segment.index)
        assert segment.title in spoken
        for point in segment.key_points:
            assert point in spoken
    assert "Reusable boosters cut the cost of reaching orbit by a large factor." in json.dumps(
        transcript.to_json()
    )


def test_a_segment_passes_between_speakers_with_a_question() -> None:
    _, outline, transcript = transcript_for(num_segments=1, words_per_segment=120)
    turns = [t for t in transcript.turns if t.part == "segment"]
    assert len(turns) >= 3
    assert turns[0].text.startswith(f"Let's start with {outline.segments[0].title}.")
    assert turns[0].text.endswith("?") and turns[1].speaker in turns[0].text


def test_the_briefing_suffix_is_quoted_in_the_intro() -> None:
    _, _, transcript = transcript_for(briefing_suffix="Focus on what engineers expect next.")
    assert "Our brief for today: focus on what engineers expect next." in transcript.turns[0].text


def test_without_a_suffix_the_profile_briefing_is_the_brief() -> None:
    _, _, transcript = transcript_for(episode="quick_brief")
    assert "Our brief for today: summarise the essentials briefly" in transcript.turns[0].text


def test_a_solo_narrator_introduces_and_closes_alone() -> None:
    _, _, transcript = transcript_for(speakers="solo")
    assert transcript.turns[0].text.startswith("Welcome to Weekly Roundup. I'm Sam. In this episode:")
    assert transcript.turns[-1].text.endswith("Thanks for listening, and goodbye!")
    assert len([t for t in transcript.turns if t.part == "outro"]) == 1


def test_segments_aim_at_the_profiles_words_per_segment() -> None:
    transcript = transcript_for(num_segments=1, words_per_segment=60)[2]
    spoken = sum(len(words(t.text)) for t in transcript.turns if t.segment == 1)
    assert 48 <= spoken <= 100


def test_the_transcript_is_deterministic_and_json_ready() -> None:
    first, second = transcript_for()[2], transcript_for()[2]
    assert first.to_json() == second.to_json()
    data = json.loads(json.dumps(first.to_json()))
    assert data["speakers"] == [
        {"name": "Alex", "voice": "en-us+m3"},
        {"name": "Jordan", "voice": "en-us+f3"},
    ]
    assert data["turns"][0] == {
        "index": 0,
        "speaker": "Alex",
        "part": "intro",
        "segment": None,
        "text": first.turns[0].text,
    }
    assert data["word_count"] == sum(len(words(t.text)) for t in first.turns)
