"""Join WAV files into one mono 16-bit PCM WAV, with silences between them.

espeak-ng writes 22050 Hz mono 16-bit, so normally the frames are copied as
they are. Parts in another format are converted: 8-bit to 16-bit, channels
averaged to mono, and a linear resampling to the first part's rate. The
output is streamed part by part (an hour of speech is ~150 MB as PCM) into a
hidden temporary file that is renamed to its name only once complete.

:func:`is_complete_clip` is the check a stored clip passes before it is reused
(:mod:`podflow.checkpoints`): decodable, complete, and of a plausible length.
"""

from __future__ import annotations

import os
import sys
import wave
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import GenerationError
from .files import partial_path

__all__ = ["is_complete_clip", "join_wavs", "to_mono16"]

_WIDTH = 2  # 16-bit
_ESPEAK_RATE = 22050
_HEADER_BYTES = 44
#: a clip's plausible length: no speech is faster than 200 characters a second,
#: nor slower than one a second (plus a minute of slack for a slow voice)
_FASTEST_S_PER_CHAR = 0.005
_SLOWEST_S_PER_CHAR = 1.0
_SLACK_S = 60.0
_SHORTEST_S = 0.05


def is_complete_clip(path: Path, *, chars: int) -> bool:
    """Whether ``path`` is a whole mono 16-bit PCM WAV (its header's sizes match the
    file, every frame is there) lasting plausibly long for ``chars`` characters of text.

    A torn write or a truncated file fails: its header promises more frames than
    follow. Reading it all costs ~1 ms per second of audio.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw:
            head = raw.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return False
            if int.from_bytes(head[4:8], "little") != size - 8:
                return False
            raw.seek(0)
            with wave.open(raw, "rb") as source:
                if (source.getnchannels(), source.getsampwidth(), source.getcomptype()) != (1, _WIDTH, "NONE"):
                    return False
                frames, rate = source.getnframes(), source.getframerate()
                if len(source.readframes(frames)) != frames * _WIDTH or size < _HEADER_BYTES + frames * _WIDTH:
                    return False
    except (OSError, EOFError, wave.Error):
        return False
    seconds = frames / rate if rate else 0.0
    shortest = max(_SHORTEST_S, chars * _FASTEST_S_PER_CHAR)
    return shortest <= seconds <= _SLACK_S + chars * _SLOWEST_S_PER_CHAR


def join_wavs(
    parts: Sequence[Path],
    out: Path,
    *,
    pauses_s: Sequence[float],
    check: Callable[[], None] = lambda: None,
) -> float:
    """Write ``parts`` one after the other into ``out``; its duration in seconds.

    ``pauses_s[i]`` is the silence after part ``i`` (one fewer than the parts).
    ``check`` runs before each part (a cancellation check). ``out`` appears
    only when complete; on any error or interrupt the partial file is removed.

    Raises:
      GenerationError: no parts, or a part that is not a readable PCM WAV.
    """
    if not parts:
        raise GenerationError("no audio to join")
    if len(pauses_s) != len(parts) - 1:
        raise ValueError("pauses_s needs one pause between each two parts")
    tmp = partial_path(out)
    try:
        rate = 0
        frames = 0
        with wave.open(str(tmp), "wb") as sink:
            # parameters set before anything can fail, so closing never raises on top
            sink.setparams((1, _WIDTH, _ESPEAK_RATE, 0, "NONE", "not compressed"))
            for i, part in enumerate(parts):
                check()
                part_rate, pcm = _read(part)
                if not rate:  # the first part sets the rate (nothing is written yet)
                    rate = part_rate
                    sink.setframerate(rate)
                pcm = _resample(pcm, part_rate, rate)
                if i:
                    silence = round(pauses_s[i - 1] * rate)
                    sink.writeframes(bytes(silence * _WIDTH))
                    frames += silence
                sink.writeframes(pcm)
                frames += len(pcm) // _WIDTH
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return frames / rate


def _read(path: Path) -> tuple[int, bytes]:
    """(frame rate, mono 16-bit little-endian PCM) of the WAV at ``path``."""
    try:
        with wave.open(str(path), "rb") as source:
            rate, channels, width = source.getframerate(), source.getnchannels(), source.getsampwidth()
            raw = source.readframes(source.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise GenerationError(f"cannot read the speech output {path.name}: {exc}") from None
    return rate, to_mono16(raw, channels=channels, width=width)


def to_mono16(raw: bytes, *, channels: int, width: int) -> bytes:
    """PCM frames of ``channels`` times ``width`` bytes as mono 16-bit little-endian.

    Raises:
      GenerationError: a sample width other than 8 or 16 bits.
    """
    if channels == 1 and width == _WIDTH:
        return raw
    if width == 1:  # 8-bit WAV is unsigned
        samples = array("h", ((b - 128) << 8 for b in raw))
    elif width == _WIDTH:
        samples = _samples(raw)
    else:
        raise GenerationError(f"unsupported WAV sample width: {8 * width} bits")
    if channels > 1:
        frames = range(0, len(samples), channels)
        samples = array("h", (sum(samples[i : i + channels]) // channels for i in frames))
    return _bytes(samples)


def _resample(pcm: bytes, rate: int, target: int) -> bytes:
    """Linear interpolation from ``rate`` to ``target`` Hz (speech needs no better)."""
    if rate == target or not pcm:
        return pcm
    samples = _samples(pcm)
    count = max(1, round(len(samples) * target / rate))
    step = (len(samples) - 1) / max(1, count - 1)
    out = array("h")
    for i in range(count):
        pos = i * step
        left = int(pos)
        right = min(left + 1, len(samples) - 1)
        out.append(round(samples[left] + (samples[right] - samples[left]) * (pos - left)))
    return _bytes(out)


def _samples(pcm: bytes) -> array[int]:
    samples = array("h", pcm)
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    return samples


def _bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()
