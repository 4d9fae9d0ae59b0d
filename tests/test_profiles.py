"""Bundled profiles, seeding, and voice checks against the installed espeak-ng."""

from __future__ import annotations

import pytest

from podflow.errors import GenerationError, InvalidInput, ToolMissing, UnreadableProfile
from podflow.generation.request import build_request, validate_request
from podflow.models import EpisodeProfile, Speaker, SpeakerProfile
from podflow.profiles import (
    BUNDLED_EPISODE_PROFILES,
    BUNDLED_SPEAKER_PROFILES,
    available_voices,
    check_speaker_profile,
    read_profile,
    read_profiles,
    seed_defaults,
)
from podflow.store.base import Store
from tests.conftest import T0, make_request, make_run

ALL_NAMES = {"tech_news", "deep_dive", "quick_brief", "tech_news_zh", "dual_host", "solo", "panel", "dual_host_zh"}


def speakers(*voices: str) -> SpeakerProfile:
    return SpeakerProfile(
        name="mine",
        speakers=[Speaker(name=f"S{i}", voice=v, personality="calm") for i, v in enumerate(voices)],
    )


def test_the_bundled_profiles_are_the_promised_ones() -> None:
    assert {p.name for p in BUNDLED_EPISODE_PROFILES} == {"tech_news", "deep_dive", "quick_brief", "tech_news_zh"}
    counts = {p.name: len(p.speakers) for p in BUNDLED_SPEAKER_PROFILES}
    assert counts["dual_host"] == 2 and counts["solo"] == 1 and 3 <= counts["panel"] <= 4
    assert counts["dual_host_zh"] == 2
    for profile in BUNDLED_EPISODE_PROFILES:
        assert profile.description and profile.default_briefing


def test_the_chinese_profiles_speak_mandarin_with_espeak_cmn_voices() -> None:
    episode = next(p for p in BUNDLED_EPISODE_PROFILES if p.name == "tech_news_zh")
    speakers = next(p for p in BUNDLED_SPEAKER_PROFILES if p.name == "dual_host_zh")
    assert episode.language == "zh"
    assert all(s.voice.startswith("cmn") for s in speakers.speakers)


def test_provider_voices_are_not_checked_against_espeak() -> None:
    check_speaker_profile(speakers("alloy", "af_bella"), tts="openai")  # the provider checks its own


def test_bundled_speakers_have_real_and_distinct_voices() -> None:
    for profile in BUNDLED_SPEAKER_PROFILES:
        check_speaker_profile(profile, tts="espeak")
        voices = [s.voice for s in profile.speakers]
        assert len(set(voices)) == len(voices), profile.name


def test_seeding_twice_keeps_an_edit_and_does_not_resurrect_a_deletion(store: Store) -> None:
    assert set(seed_defaults(store, now=T0)) == ALL_NAMES
    tech = store.get_profile("episode", "tech_news")
    assert isinstance(tech, EpisodeProfile)
    store.update_profile(tech.model_copy(update={"num_segments": 9, "description": "edited"}), now=T0)
    assert store.delete_profile("speaker", "panel")

    assert seed_defaults(store, now=T0) == []
    edited = store.get_profile("episode", "tech_news")
    assert isinstance(edited, EpisodeProfile)
    assert (edited.num_segments, edited.description) == (9, "edited")
    assert store.get_profile("speaker", "panel") is None
    assert {p.name for p in store.list_profiles("speaker")} == {"dual_host", "solo", "dual_host_zh"}


def test_an_unknown_voice_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"unknown espeak-ng voice 'en-us\+nobody'") as err:
        check_speaker_profile(speakers("en-us+m3", "en-us+nobody"), tts="espeak")
    assert err.value.field == "speakers[1].voice"
    assert "espeak-ng --voices" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        check_speaker_profile(speakers("klingon"), tts="espeak")
    assert err.value.field == "speakers[0].voice"


def test_languages_variants_and_language_aliases_are_accepted() -> None:
    check_speaker_profile(speakers("en-us", "EN-GB+f2", "en", "de+m1"), tts="espeak")
    voices = available_voices()
    assert "en-us+m3" in voices and "en-us+male3" not in voices  # a variant's name is not its file


def test_any_voice_passes_without_speech() -> None:
    check_speaker_profile(speakers("not-a-voice"), tts="none")


def test_voice_check_without_espeak_names_the_tool_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match=r"apt-get install espeak-ng .*PODFLOW_TTS=none"):
        check_speaker_profile(speakers("en-us"), tts="espeak")


def store_as_an_older_version_did(store: Store, name: str = "blank") -> None:
    """A speaker profile as versions before the strip-first rule stored a whitespace-only
    personality: ``""``, which no version accepts (written without validation)."""
    speaker = Speaker.model_construct(name="Ada", voice="en-us", personality="")
    store.create_profile(SpeakerProfile.model_construct(name=name, description="", speakers=[speaker]), now=T0)


def test_a_stored_profile_this_version_refuses_is_reported_by_name_not_as_a_crash(store: Store) -> None:
    seed_defaults(store, now=T0)
    store_as_an_older_version_did(store)
    for read in (lambda: read_profile(store, "speaker", "blank"), lambda: read_profiles(store, "speaker")):
        with pytest.raises(UnreadableProfile) as unreadable:
            read()
        assert (unreadable.value.kind, unreadable.value.name) == ("speaker", "blank")
        assert unreadable.value.problems[0]["field"] == "speakers[0].personality"
        assert str(unreadable.value).startswith("speaker profile 'blank' cannot be read: speakers[0].personality")
    assert read_profile(store, "speaker", "solo") is not None  # the others read as ever


def test_a_run_naming_an_unreadable_profile_is_refused_naming_the_field_or_fails_for_good(store: Store) -> None:
    seed_defaults(store, now=T0)
    store_as_an_older_version_did(store)
    with pytest.raises(InvalidInput, match="speaker profile 'blank' cannot be read") as refused:
        validate_request(store, make_request(speaker_profile="blank"))
    assert refused.value.field == "speaker_profile"
    with pytest.raises(GenerationError, match="speaker profile 'blank' cannot be read"):
        build_request(store, make_run(speaker_profile="blank"))


def test_replacing_or_deleting_an_unreadable_profile_repairs_the_store(store: Store) -> None:
    store_as_an_older_version_did(store, "one")
    store_as_an_older_version_did(store, "two")
    store.update_profile(speakers("en-us").model_copy(update={"name": "one"}), now=T0)
    assert store.delete_profile("speaker", "two")
    assert [p.name for p in read_profiles(store, "speaker")] == ["one"]
