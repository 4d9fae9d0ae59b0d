"""Joining WAV parts into one mono 16-bit file."""

from __future__ import annotations

import wave
from array import array
from pathlib import Path

import pytest

from podflow.errors import GenerationError, RunCancelled
from podflow.generation.wav import join_wavs, to_mono16


def write_wav(
    path: Path, samples: list[int], *, rate: int = 22050, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(samples) if width == 1 else array("h", samples).tobytes())
    return path


def read(path: Path) -> tuple[int, int, int, list[int]]:
    with wave.open(str(path), "rb") as w:
        return (
            w.getnchannels(),
            w.getsampwidth(),
            w.getframerate(),
            list(array("h", w.readframes(w.getnframes()))),
        )


def test_parts_are_joined_with_the_pauses_between_them(tmp_path: Path) -> None:
    a = write_wav(tmp_path / "a.wav", [1000] * 10, rate=10)
    b = write_wav(tmp_path / "b.wav", [-1000] * 5, rate=10)
    c = write_wav(tmp_path / "c.wav", [7] * 2, rate=10)
    duration = join_wavs([a, b, c], tmp_path / "out.wav", pauses_s=[0.3, 0.1])
    assert read(tmp_path / "out.wav") == (1, 2, 10, [1000] * 10 + [0] * 3 + [-1000] * 5 + [0] + [7] * 2)
    assert duration == pytest.approx(2.1)


def test_other_formats_are_converted_to_the_first_parts_rate_in_mono_16_bit(tmp_path: Path) -> None:
    first = write_wav(tmp_path / "first.wav", [0, 0], rate=20)
    stereo_8bit = write_wav(tmp_path / "b.wav", [128, 128, 192, 64, 255, 255], rate=10, channels=2, width=1)
    join_wavs([first, stereo_8bit], tmp_path / "out.wav", pauses_s=[0])
    channels, width, rate, samples = read(tmp_path / "out.wav")
    assert (channels, width, rate) == (1, 2, 20)
    assert samples[:2] == [0, 0] and len(samples) == 2 + 6  # 3 frames at 10 Hz -> 6 at 20 Hz
    assert samples[2] == 0 and samples[-1] == 127 << 8


def test_mono16_is_left_alone_and_stereo_is_averaged() -> None:
    raw = array("h", [100, 300, -50, 50]).tobytes()
    assert to_mono16(raw, channels=1, width=2) == raw
    assert list(array("h", to_mono16(raw, channels=2, width=2))) == [200, 0]
    with pytest.raises(GenerationError, match="24 bits"):
        to_mono16(b"\0" * 6, channels=1, width=3)


def test_an_interrupted_join_leaves_no_file_behind(tmp_path: Path) -> None:
    parts = [write_wav(tmp_path / f"{i}.wav", [i] * 100) for i in range(3)]
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RunCancelled("stop")

    with pytest.raises(RunCancelled):
        join_wavs(parts, tmp_path / "out.wav", pauses_s=[0.1, 0.1], check=check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.wav", "1.wav", "2.wav"]


def test_a_part_that_is_not_a_wav_is_a_generation_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(GenerationError, match=r"cannot read the speech output bad\.wav"):
        join_wavs([bad], tmp_path / "out.wav", pauses_s=[])
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / ".out.wav.partial").exists()
    with pytest.raises(GenerationError, match="no audio"):
        join_wavs([], tmp_path / "out.wav", pauses_s=[])
