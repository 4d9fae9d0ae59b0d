"""The built-in generator end to end, with the real espeak-ng."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import threading
import time
import wave
from itertools import pairwise
from pathlib import Path

import pytest
from dramatiq.threading import raise_thread_exception

from podflow.errors import GenerationError, RunCancelled, ToolMissing
from podflow.generation.base import GenerationContext, GenerationRequest, GeneratorConfig
from podflow.generation.builtin import generate
from podflow.generation.context import LocalContext
from podflow.generation.text import words
from podflow.models import Speaker
from podflow.profiles import BUNDLED_EPISODE_PROFILES, BUNDLED_SPEAKER_PROFILES
from tests.execution import wait_for
from tests.fake_provider import FakeProvider, Reply
from tests.generation.conftest import ConfigFactory, espeak_children, generation_request, make_source

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


# -- MP3, languages, providers -------------------------------------------------------------------

CHINESE_ARTICLE = """# 科技周报

## 可回收火箭
轨道助推器第二十次成功降落在无人船上。可回收火箭把进入轨道的成本降低了很多。

## 固态电池
固态电池有望让电动汽车跑得更远。由于固态电解质不会燃烧，安全性也更高。
"""
MIXED = re.compile(r"[。！？，、；：][.!?,;:]|[.!?,;:][。！？，、；：]")


def decoded_seconds(path: Path) -> float:
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:1"]
    return len(subprocess.run(command, capture_output=True, check=True).stdout) / 2 / 24000


def test_the_episode_is_an_mp3_by_default_whose_duration_is_exact(tmp_path: Path) -> None:
    result = generate(generation_request(speakers="solo", num_segments=1), context(tmp_path, GeneratorConfig()))
    assert result.audio_path == tmp_path / "episode.mp3" and result.duration_s is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.mp3", "outline.json", "transcript.json"]
    assert decoded_seconds(result.audio_path) == pytest.approx(result.duration_s, abs=0.005)


def test_a_chinese_episode_is_framed_in_chinese_counted_in_characters_without_mixed_punctuation(
    tmp_path: Path,
) -> None:
    episode = next(p for p in BUNDLED_EPISODE_PROFILES if p.name == "tech_news_zh")
    episode = episode.model_copy(update={"num_segments": 2})
    speakers = next(p for p in BUNDLED_SPEAKER_PROFILES if p.name == "dual_host_zh")
    request = GenerationRequest(
        run_id="run_" + "0" * 32,
        episode_name="科技周报",
        episode_profile=episode,
        speaker_profile=speakers,
        sources=[make_source(CHINESE_ARTICLE, "zh.md")],
        briefing=episode.default_briefing,
    )
    ctx = context(tmp_path, dataclasses.replace(SPEAK, audio_format="mp3"))
    result = generate(request, ctx)
    transcript = json.loads((tmp_path / "transcript.json").read_text(encoding="utf-8"))
    turns = [turn["text"] for turn in transcript["turns"]]
    welcome = "欢迎收听科技周报。我是小明。今天和我一起的有小红。本期内容：首先是可回收火箭；最后是固态电池。"
    assert turns[0].startswith(welcome)
    assert "Welcome" not in "".join(turns) and not any(MIXED.search(text) for text in turns)
    assert turns[-1] == "感谢收听，再见！"
    characters = sum(len(re.findall(r"[\u4e00-\u9fff]", text)) for text in turns)
    assert transcript["word_count"] == characters and transcript["language"] == "zh"
    assert ctx.events[-1].message.startswith(f"{characters:,} characters, ")
    assert result.duration_s and result.duration_s > 5


def test_the_llm_writer_with_espeak(fake: FakeProvider, configs: ConfigFactory, tmp_path: Path) -> None:
    config = configs(tts="espeak", audio_format="wav")
    result = generate(generation_request(num_segments=1), context(tmp_path, config))
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    assert all(turn["text"].startswith("Fake text") for turn in transcript["turns"])
    assert len(fake.calls("chat")) == 2 and not fake.calls("speech")
    assert result.audio_path == tmp_path / "episode.wav" and result.duration_s


def test_the_built_in_writer_with_provider_voices(fake: FakeProvider, configs: ConfigFactory, tmp_path: Path) -> None:
    result = generate(generation_request(num_segments=1), context(tmp_path, configs(llm="none")))
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    assert not fake.calls("chat") and len(fake.calls("speech")) == len(transcript["turns"])
    assert {c.body["voice"] for c in fake.calls("speech")} == {"en-us+m3", "en-us+f3"}  # the profile's voices
    assert result.duration_s == pytest.approx(decoded_seconds(tmp_path / "episode.mp3"), abs=0.005)


def test_the_llm_writer_without_speech(fake: FakeProvider, configs: ConfigFactory, tmp_path: Path) -> None:
    ctx = context(tmp_path, configs(tts="none"))
    result = generate(generation_request(num_segments=1), ctx)
    assert result.audio_path is None and len(fake.calls("chat")) == 2 and not fake.calls("speech")
    assert ctx.events[-1].message.endswith("no audio (PODFLOW_TTS=none)")


def test_llm_and_provider_voices_make_an_episode_of_the_joined_clips(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    ctx = context(tmp_path, configs())
    result = generate(generation_request(num_segments=2, speakers="panel"), ctx)
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    turns = transcript["turns"]
    assert {t["speaker"] for t in turns} <= {"Morgan", "Priya", "Leo"}
    assert [c.body["input"] for c in sorted(fake.calls("speech"), key=lambda c: c.body["input"])] == sorted(
        t["text"] for t in turns
    )
    clip_s = sum(min(30.0, max(0.2, len(t["text"]) * fake.seconds_per_char)) for t in turns)
    pauses = [0.35 if (a["part"], a["segment"]) == (b["part"], b["segment"]) else 0.8 for a, b in pairwise(turns)]
    assert result.duration_s == pytest.approx(clip_s + sum(pauses), abs=0.002)
    assert decoded_seconds(tmp_path / "episode.mp3") == pytest.approx(result.duration_s, abs=0.005)
    stages = [e.stage for e in ctx.events]
    assert stages[0] == "outline" and stages[-1] == "done" and "encoding MP3" in ctx.events[-2].message


def test_cancelling_while_the_llm_hangs_returns_at_once_and_closes_the_request(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(hang_s=60))
    cancel = threading.Event()
    ctx = context(tmp_path, configs(), cancel_event=cancel)
    threading.Timer(0.3, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(RunCancelled):
        generate(generation_request(), ctx)
    assert time.monotonic() - began < 1.5
    wait_for(lambda: fake.calls("chat")[0].aborted, timeout=2, what="the request to be closed")


# -- checkpoints -----------------------------------------------------------------------------------------


def test_a_second_attempt_reuses_every_stage_and_makes_the_same_episode(tmp_path: Path) -> None:
    request = generation_request(num_segments=1)
    first = context(tmp_path / "a1", checkpoint_dir=tmp_path / "ck")
    made = generate(request, first)
    second = context(tmp_path / "a2", checkpoint_dir=tmp_path / "ck", attempt=2)
    again = generate(request, second)
    assert again.audio_path.read_bytes() == made.audio_path.read_bytes()
    tally = second.checkpoints.tally()
    turns = tally["audio"].reused
    assert turns > 2 and [(t.computed, t.reused) for t in tally.values()] == [(0, 1), (0, 1), (0, turns)]
    messages = [e.message for e in second.events]
    assert "reused the outline" in messages and f"reused {turns} of {turns} clips" in messages
    assert messages[-1].endswith(f"; reused outline, transcript and {turns} of {turns} clips")


def test_a_changed_briefing_recomputes_the_outline_and_what_follows_from_it(tmp_path: Path) -> None:
    generate(generation_request(num_segments=1), context(tmp_path / "a1", checkpoint_dir=tmp_path / "ck"))
    briefed = context(tmp_path / "a2", checkpoint_dir=tmp_path / "ck")
    generate(generation_request(num_segments=1, default_briefing="Only the river."), briefed)
    tally = briefed.checkpoints.tally()
    assert (tally["outline"].computed, tally["transcript"].computed) == (1, 1)
    # the intro quotes the brief: that clip is new; turns whose text did not change are the same audio
    assert tally["audio"].computed >= 1


def test_provider_clips_already_paid_for_are_not_asked_again(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    request = generation_request(num_segments=1)
    config = configs(audio_format="wav", tts_parallelism=1)
    fake.script("speech", Reply(), Reply(), Reply(status=400, error="Input rejected."))  # the third turn fails
    with pytest.raises(GenerationError, match="400"):
        generate(request, context(tmp_path / "a1", config, checkpoint_dir=tmp_path / "ck"))
    asked = len(fake.calls("speech"))  # and maybe the next turn's, sent as the third failed, then closed
    assert len(fake.calls("chat")) == 2 and [c.status for c in fake.calls("speech")][:3] == [200, 200, 400]
    wait_for(lambda: all(c.ended for c in fake.calls("speech")), timeout=5, what="the closed request to end")
    assert not [c for c in fake.calls("speech")[3:] if c.status == 200]
    retried = context(tmp_path / "a2", config, checkpoint_dir=tmp_path / "ck", attempt=2)
    result = generate(request, retried)
    turns = len(json.loads(result.transcript_path.read_text())["turns"])
    assert len(fake.calls("chat")) == 2  # the outline and transcript were reused
    assert len(fake.calls("speech")) == asked + turns - 2  # only the clips not yet paid for
    assert retried.checkpoints.tally()["audio"].reused == 2


def test_a_voice_fixed_after_a_refusal_reuses_the_outline_and_transcript_and_speaks_only_the_missing_clips(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.voices = {"en-us+m3", "en-us+f3"}
    request = generation_request(num_segments=1)
    fixed = request.speaker_profile
    guest = fixed.speakers[1]
    typo = fixed.model_copy(update={"speakers": [fixed.speakers[0], guest.model_copy(update={"voice": "en-us+f9"})]})
    config = configs(audio_format="wav", tts_parallelism=1)
    first = context(tmp_path / "a1", config, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(GenerationError, match=r"TTS voice 'en-us\+f9' unknown"):
        generate(dataclasses.replace(request, speaker_profile=typo), first)
    wait_for(lambda: all(c.ended for c in fake.calls("speech")), timeout=5, what="the closed requests to end")
    paid = [c for c in fake.calls("speech") if c.status == 200]
    assert paid and {c.body["voice"] for c in paid} == {"en-us+m3"} and len(fake.calls("chat")) == 2
    asked = len(fake.calls("speech"))

    retried = context(tmp_path / "a2", config, checkpoint_dir=tmp_path / "ck", attempt=2)
    result = generate(request, retried)  # the profile's voice fixed: same names and personalities
    turns = json.loads(result.transcript_path.read_text())["turns"]
    assert len(fake.calls("chat")) == 2  # no LLM call: outline and transcript reused
    spoken = fake.calls("speech")[asked:]
    assert len(spoken) == len(turns) - len(paid)  # only the clips not yet paid for
    assert guest.voice in {c.body["voice"] for c in spoken} and "en-us+f9" not in {c.body["voice"] for c in spoken}
    tally = retried.checkpoints.tally()
    assert {stage: (t.computed, t.reused) for stage, t in tally.items()} == {
        "outline": (0, 1),
        "transcript": (0, 1),
        "audio": (len(turns) - len(paid), len(paid)),
    }
