"""Provider voices: one /audio/speech request per turn, in parallel up to the run's share, decoded as they come."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from podflow.generation.context import LocalContext
from podflow.generation.providers import ProviderRejected
from podflow.generation.voices import Clip, ProviderVoice
from tests.fake_provider import FakeProvider, Reply
from tests.generation.conftest import ConfigFactory


def speak(
    configs: ConfigFactory, tmp_path: Path, clips: list[Clip], parallelism: int = 3
) -> tuple[LocalContext, list[Path]]:
    config = configs()
    assert config.tts_provider is not None
    voice = ProviderVoice(provider=config.tts_provider, parallelism=parallelism)
    ctx = LocalContext(run_id="run_" + "0" * 32, work_dir=tmp_path, config=config)
    return ctx, voice.speak(clips, tmp_path / "turns", ctx, span=(20, 95))


def clips(count: int, voice: str = "alloy", model: str = "tts-fake") -> list[Clip]:
    return [
        Clip(speaker="Ada", voice=voice, text=f"Turn number {i}.", engine="openai", model=model)
        for i in range(count)
    ]


def test_each_turn_is_one_request_spoken_in_parallel_and_decoded(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.latency_s["speech"] = 0.1
    ctx, paths = speak(configs, tmp_path, clips(7))
    assert [p.name for p in paths] == [f"turn_{i:04d}.wav" for i in range(7)]
    for path in paths:
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 24000) and w.getnframes() > 0
    bodies = [c.body for c in fake.calls("speech")]
    assert sorted(b["input"] for b in bodies) == sorted(c.text for c in clips(7))
    assert {(b["model"], b["voice"], b["response_format"]) for b in bodies} == {("tts-fake", "alloy", "wav")}
    assert fake.peak("speech") == 3  # PODFLOW_TTS_PARALLELISM
    spoken = [e for e in ctx.events if e.message.startswith("spoke turn")]
    assert [e.message for e in spoken][-1] == "spoke turn 7 of 7" and spoken[-1].percent == 95


def test_an_unknown_voice_fails_naming_it_and_stops_the_other_requests(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.voices = {"alloy"}
    fake.latency_s["speech"] = 0.2
    with pytest.raises(ProviderRejected, match="TTS voice 'nobody' unknown to tts-fake"):
        speak(configs, tmp_path, [*clips(1, voice="nobody"), *clips(8)], parallelism=3)
    asked = [c for c in fake.calls("speech") if c.body]
    assert len(asked) < 9  # the turns queued behind the failure were never asked for


def test_an_unknown_voice_names_the_profiles_tts_model_when_it_overrides_the_setting(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.voices = {"alloy"}
    with pytest.raises(ProviderRejected, match="TTS voice 'nobody' unknown to tts-hd at "):
        speak(configs, tmp_path, clips(1, voice="nobody", model="tts-hd"))  # the speaker profile's tts_model
    assert [c.body["model"] for c in fake.calls("speech")] == ["tts-hd"]


def test_a_transient_failure_of_one_turn_is_retried_in_the_attempt(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("speech", Reply(status=503))
    _, paths = speak(configs, tmp_path, clips(2))
    assert len(paths) == 2 and [c.status for c in fake.calls("speech")].count(503) == 1
