"""The built-in generator end to end, with the real espeak-ng."""

from __future__ import annotations

import dataclasses
import json
import threading
import wave
from pathlib import Path

import pytest
from dramatiq.threading import raise_thread_exception

from podflow.errors import GenerationError, RunCancelled, ToolMissing
from podflow.generation.base import GenerationContext, GeneratorConfig
from podflow.generation.builtin import generate
from podflow.generation.context import LocalContext
from podflow.generation.text import words
from podflow.models import Speaker
from tests.generation.conftest import espeak_children, generation_request

SPEAK = GeneratorConfig(tts="espeak", tts_timeout_s=30, tts_parallelism=2, audio_format="wav")


def context(work_dir: Path, config: GeneratorConfig = SPEAK, **kw: object) -> LocalContext:
    return LocalContext(run_id="run_" + "0" * 32, work_dir=work_dir, config=config, **kw)  # type: ignore[arg-type]


def test_the_local_context_is_a_generation_context(tmp_path: Path) -> None:
    assert isinstance(context(tmp_path), GenerationContext)


def test_an_episode_is_outlined_written_and_spoken(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    result = generate(generation_request(), ctx)

    assert result.outline_path == tmp_path / "outline.json"
    assert result.transcript_path == tmp_path / "transcript.json"
    assert result.audio_path == tmp_path / "episode.wav"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.wav", "outline.json", "transcript.json"]

    transcript = json.loads(result.transcript_path.read_text())
    spoken = " ".join(turn["text"] for turn in transcript["turns"])
    assert "Volunteers removed two tons of plastic from the river over three weekends." in spoken
    assert {turn["speaker"] for turn in transcript["turns"]} == {"Alex", "Jordan"}

    with wave.open(str(result.audio_path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getcomptype()) == (1, 2, "NONE")
        duration = w.getnframes() / w.getframerate()
    assert result.duration_s == pytest.approx(duration, abs=0.001)
    word_count = sum(len(words(turn["text"])) for turn in transcript["turns"])
    assert 0.15 * word_count < duration < 1.0 * word_count


def test_progress_is_reported_per_stage_and_per_spoken_turn(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    generate(generation_request(), ctx)
    turns = len(json.loads((tmp_path / "transcript.json").read_text())["turns"])
    stages = [e.stage for e in ctx.events]
    assert stages == ["outline", "transcript", "audio"] + ["audio"] * turns + ["done"]
    percents = [e.percent for e in ctx.events]
    assert percents == sorted(percents) and percents[-1] == 100
    assert ctx.events[-2].message == f"spoke turn {turns} of {turns}"


def test_the_same_request_gives_the_same_files(tmp_path: Path) -> None:
    request = generation_request(speakers="panel", briefing_suffix="Mind the schools.")
    generate(request, context(tmp_path / "a"))
    generate(request, context(tmp_path / "b"))
    for name in ("outline.json", "transcript.json", "episode.wav"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_without_speech_only_outline_and_transcript_are_written(tmp_path: Path) -> None:
    ctx = context(tmp_path, GeneratorConfig(tts="none"))
    result = generate(generation_request(speakers="solo"), ctx)
    assert (result.audio_path, result.duration_s) == (None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outline.json", "transcript.json"]
    assert [e.stage for e in ctx.events] == ["outline", "transcript", "done"]


def test_cancelling_during_the_audio_stage_leaves_no_episode_and_no_espeak(tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(stage: str, percent: float, message: str) -> None:
        if message.startswith("spoke turn 2 "):
            cancel.set()

    ctx = context(tmp_path, cancel_event=cancel, on_progress=on_progress)
    with pytest.raises(RunCancelled):
        generate(generation_request(), ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outline.json", "transcript.json"]
    assert espeak_children() == []
    spoken = [e for e in ctx.events if e.message.startswith("spoke turn")]
    assert len(spoken) == 2  # stopped between turns


def test_an_asynchronous_interrupt_mid_synthesis_is_cleaned_up(tmp_path: Path) -> None:
    """What podflow does on cancel or soft time limit: raise in the generator's thread."""
    first_turn = threading.Event()
    outcome: list[BaseException] = []
    config = GeneratorConfig(tts="espeak", tts_timeout_s=30, tts_parallelism=3, audio_format="wav")
    request = generation_request(episode="deep_dive", speakers="panel")

    def run() -> None:
        ctx = context(
            tmp_path, config, on_progress=lambda s, p, m: m.startswith("spoke") and first_turn.set()
        )
        try:
            generate(request, ctx)
        except BaseException as exc:  # the test inspects what ended the thread
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert first_turn.wait(10)
    raise_thread_exception(thread.ident, RunCancelled)
    thread.join(10)
    assert not thread.is_alive()
    assert [type(e) for e in outcome] == [RunCancelled]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outline.json", "transcript.json"]
    assert espeak_children() == []


def test_an_unknown_voice_fails_before_any_work(tmp_path: Path) -> None:
    request = generation_request()
    profile = request.speaker_profile.model_copy(
        update={
            "speakers": [
                *request.speaker_profile.speakers,
                Speaker(name="Zed", voice="xx-nope", personality="odd"),
            ]
        }
    )
    with pytest.raises(GenerationError, match=r"speakers\[2\]\.voice: unknown espeak-ng voice 'xx-nope'"):
        generate(dataclasses.replace(request, speaker_profile=profile), context(tmp_path))
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_without_espeak_the_run_fails_naming_the_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="apt-get install espeak-ng"):
        generate(generation_request(), context(tmp_path / "work"))
    assert not (tmp_path / "work").exists()


def test_an_unknown_speech_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="unknown PODFLOW_TTS='say'"):
        generate(generation_request(), context(tmp_path, GeneratorConfig(tts="say")))
