"""The audio stage: every turn spoken by a voice, joined with pauses, encoded as the episode.

::

    clips --voice.speak--> one WAV per turn --join_wavs--> episode PCM --encode--> episode.mp3 | .wav

The turn files and the joined PCM live in a hidden scratch directory next to
the episode, removed however this ends; the episode appears, by rename, only
once complete. Its duration is the joined PCM's sample count over its rate,
which an MP3 with LAME's gapless header decodes back to exactly.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from .audio import AudioFormat, encode
from .base import GenerationContext
from .loop import run
from .voices.base import Clip, Span, Voice
from .wav import join_wavs

__all__ = ["render_episode"]


def render_episode(
    voice: Voice,
    clips: Sequence[Clip],
    out: Path,
    *,
    pauses_s: Sequence[float],
    fmt: AudioFormat,
    ctx: GenerationContext,
    span: Span = (20, 95),
) -> float:
    """Speak ``clips`` with ``voice`` and write the episode to ``out``; its duration in seconds.

    ``pauses_s[i]`` is the silence after clip ``i``. Progress: one report per
    turn within ``span``, then ``encoding MP3`` at its end.

    Raises:
      GenerationError: the voice failed, or ffmpeg did.
      ToolMissing: ``fmt`` is mp3 and ffmpeg is not installed.
    """
    scratch = out.with_name(f".{out.stem}.turns")
    shutil.rmtree(scratch, ignore_errors=True)  # left by a killed process
    try:
        wavs = voice.speak(clips, scratch, ctx, span=span)
        joined = scratch / "joined.wav"
        duration = join_wavs(wavs, joined, pauses_s=pauses_s, check=ctx.check_cancelled)
        if fmt == "mp3":
            ctx.progress("audio", span[1], f"encoding MP3 ({duration:.1f} s of audio)")
        run(ctx, lambda reporter: encode(joined, out, fmt=fmt), stage="audio", percent=span[1])
        return duration
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
