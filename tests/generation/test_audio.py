"""ffmpeg: provider clips in any format decoded to PCM WAV, the episode encoded to MP3 (deterministic)."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import pytest

from podflow.errors import GenerationError, ToolMissing
from podflow.generation.audio import CLIP_RATE, decode_to_wav, encode
from tests.fake_provider import RATE, tone
from tests.fake_provider import encode as encode_as


def frames(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getframerate(), w.getnframes()


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "aac"])
def test_a_clip_in_any_provider_format_decodes_to_mono_pcm_at_24_khz(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "clip.wav"
    asyncio.run(decode_to_wav(encode_as(tone(1.5), fmt), out))
    channels, rate, count = frames(out)
    assert (channels, rate) == (1, CLIP_RATE)
    assert count == pytest.approx(1.5 * RATE, abs=0.1 * RATE)  # lossy codecs pad a little (AAC most)
    if fmt in ("wav", "flac"):
        assert count == 1.5 * RATE  # lossless: to the sample
    assert list(tmp_path.iterdir()) == [out]


def test_a_wav_with_a_streamed_header_still_decodes(tmp_path: Path) -> None:
    data = bytearray(encode_as(tone(1.0), "wav"))
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"  # sizes unknown while streaming, as OpenAI sends them
    asyncio.run(decode_to_wav(bytes(data), tmp_path / "clip.wav"))
    assert frames(tmp_path / "clip.wav")[2] == RATE


def test_what_is_not_audio_is_a_generation_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="ffmpeg could not process turn 3"):
        asyncio.run(decode_to_wav(b"<html>oops</html>", tmp_path / "clip.wav", what="turn 3"))
    assert list(tmp_path.iterdir()) == []


def test_mp3_encoding_is_deterministic_and_gapless(tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(encode_as(tone(2.0), "wav"))
    asyncio.run(encode(wav, tmp_path / "a.mp3", fmt="mp3"))
    asyncio.run(encode(wav, tmp_path / "b.mp3", fmt="mp3"))
    assert (tmp_path / "a.mp3").read_bytes() == (tmp_path / "b.mp3").read_bytes()
    command = ["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.mp3"), "-f", "s16le", "pipe:1"]
    pcm = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(pcm) == 2 * 2 * RATE  # LAME's gapless header: exactly the samples that went in


def test_a_wav_episode_is_the_joined_wav_itself(tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    data = encode_as(tone(0.5), "wav")
    wav.write_bytes(data)
    asyncio.run(encode(wav, tmp_path / "episode.wav", fmt="wav"))
    assert (tmp_path / "episode.wav").read_bytes() == data and not wav.exists()


def test_without_ffmpeg_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"apt-get install ffmpeg \(or set PODFLOW_AUDIO_FORMAT=wav\)"):
        asyncio.run(decode_to_wav(b"RIFF", tmp_path / "x.wav"))
