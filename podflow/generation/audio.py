"""Audio formats through ffmpeg: provider clips decoded to PCM WAV, the episode encoded to MP3.

ffmpeg (Debian's package, installed by the Makefile) decodes whatever an
OpenAI-compatible speech server returns (MP3, WAV with a streamed header,
FLAC, Opus, AAC) and encodes MP3 with LAME. Clips are decoded to mono 16-bit
PCM at one rate, so :func:`podflow.generation.wav.join_wavs` joins them
without resampling, and the episode's duration is its sample count divided
by its rate: exact. The MP3 carries LAME's gapless header, so a decoder
honouring it (ffmpeg, browsers) yields exactly those samples.

Output is deterministic (``-bitexact``, no metadata): the same WAV always
encodes to the same bytes. Every process runs from the background event loop
(:mod:`podflow.generation.loop`): cancelling the coroutine kills it, and its
output only appears, by rename, once complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import wave
from pathlib import Path
from typing import Literal

from ..errors import GenerationError, ToolMissing
from .files import partial_path

__all__ = ["AudioFormat", "CLIP_RATE", "INSTALL_HINT", "decode_to_wav", "encode", "find_ffmpeg", "measure_seconds"]

AudioFormat = Literal["mp3", "wav"]
PROGRAM = "ffmpeg"
INSTALL_HINT = "ffmpeg is not installed; install it with: apt-get install ffmpeg (or set PODFLOW_AUDIO_FORMAT=wav)"
#: the rate provider clips are decoded to (OpenAI's and Kokoro's native rate)
CLIP_RATE = 24000
#: LAME's variable bit rate, quality 4: about 64 kbit/s for mono speech
_MP3_QUALITY = "4"
_STDERR_CHARS = 500
_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]


def find_ffmpeg() -> str:
    """The path of ffmpeg.

    Raises:
      ToolMissing: ffmpeg is not on PATH; the message says how to install it.
    """
    path = shutil.which(PROGRAM)
    if path is None:
        raise ToolMissing(INSTALL_HINT)
    return path


async def decode_to_wav(data: bytes, out: Path, *, rate: int = CLIP_RATE, what: str = "audio") -> None:
    """Decode ``data`` (any format ffmpeg reads) into ``out``: mono 16-bit PCM WAV at ``rate``.

    A WAV that already is exactly that (what podflow asks servers for) is
    written as it is, without starting a process.

    Raises:
      ToolMissing: no ffmpeg.
      GenerationError: ``data`` is not audio ffmpeg can decode (``what`` names it).
    """
    if _is_pcm_wav(data, rate):
        tmp = partial_path(out)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return
    args = ["-f", "wav", "-i", "pipe:0"] if data[:4] == b"RIFF" else ["-i", "pipe:0"]
    args += ["-vn", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", *_BITEXACT, "-f", "wav"]
    await _ffmpeg(args, out, stdin=data, what=what)


def _is_pcm_wav(data: bytes, rate: int) -> bool:
    """Whether ``data`` is a complete mono 16-bit PCM WAV at ``rate`` (a streamed header's
    unknown sizes, or any other layout, go through ffmpeg)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    try:
        with wave.open(io.BytesIO(data)) as source:
            params = (source.getnchannels(), source.getsampwidth(), source.getframerate(), source.getcomptype())
            frames = source.getnframes()
            complete = len(source.readframes(frames)) == 2 * frames
    except (wave.Error, EOFError):
        return False
    return params == (1, 2, rate, "NONE") and complete and int.from_bytes(data[4:8], "little") == len(data) - 8


async def encode(wav: Path, out: Path, *, fmt: AudioFormat) -> None:
    """``wav`` as ``out`` in ``fmt``: MP3 through LAME, or the WAV itself (moved).

    Raises:
      ToolMissing: ``fmt`` is mp3 and there is no ffmpeg.
      GenerationError: ffmpeg failed.
    """
    if fmt == "wav":
        os.replace(wav, out)
        return
    args = ["-i", str(wav), "-c:a", "libmp3lame", "-q:a", _MP3_QUALITY, *_BITEXACT, "-f", "mp3"]
    await _ffmpeg(args, out, what="the episode")


async def measure_seconds(path: Path) -> float:
    """The duration of the audio file at ``path``, as decoded (gapless) by ffmpeg: samples over rate.

    Raises:
      ToolMissing: no ffmpeg.
      GenerationError: ffmpeg cannot decode it.
    """
    proc = await asyncio.create_subprocess_exec(
        find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
        "-f", "s16le", "-ac", "1", "-ar", str(CLIP_RATE), "pipe:1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    size = 0
    try:
        while chunk := await proc.stdout.read(1 << 16):
            size += len(chunk)
        stderr = await proc.stderr.read()
        await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
    if proc.returncode != 0:
        raise GenerationError(f"ffmpeg could not read {path.name}: {stderr.decode(errors='replace')[:_STDERR_CHARS]}")
    return size / 2 / CLIP_RATE


async def _ffmpeg(args: list[str], out: Path, *, stdin: bytes | None = None, what: str) -> None:
    program = find_ffmpeg()
    tmp = partial_path(out)
    command = [program, "-hide_banner", "-v", "error", "-y", *(["-nostdin"] if stdin is None else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *command,
        str(tmp),
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await proc.communicate(stdin)
        if proc.returncode != 0 or not tmp.exists():
            message = stderr.decode(errors="replace").strip()[:_STDERR_CHARS] or f"exit code {proc.returncode}"
            raise GenerationError(f"ffmpeg could not process {what}: {message}")
        os.replace(tmp, out)
    finally:
        if proc.returncode is None:  # cancelled: kill it and reap it
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
        tmp.unlink(missing_ok=True)
