"""espeak-ng subprocesses: parallel synthesis, failures, timeouts, cleanup (real espeak-ng)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from podflow.errors import GenerationError, RunCancelled, ToolMissing, TransientGenerationError
from podflow.generation.speech import SpeechJob, synthesize
from tests.generation.conftest import espeak_children

LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)


def test_each_job_is_spoken_with_its_voice_into_its_own_wav(tmp_path: Path) -> None:
    jobs = [
        SpeechJob("en-us+m3", "Hello there."),
        SpeechJob("en-gb+f2", "-v is not an option here."),
        SpeechJob("en", "Bye."),
    ]
    done: list[tuple[int, int]] = []
    wavs = synthesize(
        jobs, out_dir=tmp_path, timeout_s=30, parallelism=2, on_done=lambda d, t: done.append((d, t))
    )
    assert [p.name for p in wavs] == ["turn_0000.wav", "turn_0001.wav", "turn_0002.wav"]
    for path in wavs:
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2) and w.getnframes() > 0
    assert done == [(1, 3), (2, 3), (3, 3)]


def test_espeak_failing_on_a_turn_is_a_generation_error_with_its_stderr(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match=r"turn 2 \(voice 'zz'.*voice does not exist") as err:
        synthesize(
            [SpeechJob("en", "fine"), SpeechJob("zz", "broken")],
            out_dir=tmp_path,
            timeout_s=30,
            parallelism=1,
        )
    assert not isinstance(err.value, TransientGenerationError)
    assert espeak_children() == []


def test_a_turn_past_its_timeout_is_transient_and_its_process_is_killed(tmp_path: Path) -> None:
    jobs = [SpeechJob("en", LONG_TEXT)] * 3
    with pytest.raises(TransientGenerationError, match=r"PODFLOW_TTS_TIMEOUT=0\.01s on turn 1"):
        synthesize(jobs, out_dir=tmp_path, timeout_s=0.01, parallelism=3)
    assert espeak_children() == []


def test_a_cancellation_check_stops_before_the_next_turn(tmp_path: Path) -> None:
    started = []

    def check() -> None:
        if len(started) == 2:
            raise RunCancelled("cancelled")
        started.append(1)

    with pytest.raises(RunCancelled):
        synthesize(
            [SpeechJob("en", LONG_TEXT)] * 5, out_dir=tmp_path, timeout_s=30, parallelism=2, check=check
        )
    assert espeak_children() == []
    assert sorted(p.suffix for p in tmp_path.iterdir()).count(".txt") == 2  # the third never started


def test_without_espeak_the_error_names_the_tool_and_its_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ToolMissing, match=r"^espeak-ng is not installed; install it with: apt-get install espeak-ng"
    ):
        synthesize([SpeechJob("en", "x")], out_dir=tmp_path / "o", timeout_s=30, parallelism=1)
