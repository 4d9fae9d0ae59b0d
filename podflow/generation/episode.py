"""The audio stage: every turn spoken by a voice, joined with pauses, encoded as the episode.

::

    clips --checkpoint?--> reused WAVs ──┐
          --voice.speak--> spoken WAVs ──┴─join_wavs--> episode PCM --encode--> episode.mp3 | .wav
                            └─ each kept as a checkpoint as soon as it is complete

Each clip is a checkpoint under ``clip.key()`` (:mod:`podflow.checkpoints`):
a clip stored by an earlier attempt, or by the run this one retries, is
reused if it is a complete WAV of plausible length
(:func:`.wav.is_complete_clip`), and the voice speaks only the others, each
stored the moment it is complete. So an attempt stopped at 95 % of the audio
leaves 95 % of the clips to the next one.

The turn files and the joined PCM live in a hidden scratch directory next to
the episode, removed however this ends (reused clips are links there, so the
checkpoints stay); the episode appears, by rename, only once complete. Its
duration is the joined PCM's sample count over its rate, which an MP3 with
LAME's gapless header decodes back to exactly.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from .audio import AudioFormat, encode
from .base import GenerationContext
from .loop import run
from .voices.base import Clip, Span, Voice
from .wav import is_complete_clip, join_wavs

__all__ = ["AUDIO_STAGE", "render_episode"]

#: the stage clips are counted under (progress, the run's result, /metrics)
AUDIO_STAGE = "audio"


def _clip_check(clip: Clip) -> Callable[[Path], bool]:
    return lambda path: is_complete_clip(path, chars=len(clip.text))


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
    """Speak ``clips`` with ``voice`` (reusing checkpointed clips) and write the episode
    to ``out``; its duration in seconds.

    ``pauses_s[i]`` is the silence after clip ``i``. Progress: what was reused
    (``reused 171 of 180 clips``), one report per turn spoken within ``span``,
    then ``encoding MP3`` at its end.

    Raises:
      GenerationError: the voice failed, or ffmpeg did.
      ToolMissing: ``fmt`` is mp3 and ffmpeg is not installed.
    """
    scratch = out.with_name(f".{out.stem}.turns")
    shutil.rmtree(scratch, ignore_errors=True)  # left by a killed process
    checkpoints = ctx.checkpoints
    try:
        wavs: list[Path | None] = []
        for i, clip in enumerate(clips):
            dest = scratch / "reused" / f"turn_{i:04d}.wav"
            found = checkpoints.reuse_file(clip.key(), dest, stage=AUDIO_STAGE, valid=_clip_check(clip))
            wavs.append(dest if found else None)
        missing = [i for i, wav in enumerate(wavs) if wav is None]
        reused = len(clips) - len(missing)
        if reused:
            speaking = f"; speaking {len(missing)}" if missing else ""
            ctx.progress(AUDIO_STAGE, span[0], f"reused {reused} of {len(clips)} clips{speaking}")
        if missing:
            start = span[0] + (span[1] - span[0]) * reused / len(clips)

            def keep(j: int, path: Path) -> None:
                clip = clips[missing[j]]
                checkpoints.keep_file(clip.key(), path, stage=AUDIO_STAGE, valid=_clip_check(clip))

            spoken = voice.speak(
                [clips[i] for i in missing], scratch / "spoken", ctx, span=(start, span[1]), on_clip=keep
            )
            for i, path in zip(missing, spoken, strict=True):
                wavs[i] = path
        parts = [wav for wav in wavs if wav is not None]
        joined = scratch / "joined.wav"
        duration = join_wavs(parts, joined, pauses_s=pauses_s, check=ctx.check_cancelled)
        if fmt == "mp3":
            ctx.progress(AUDIO_STAGE, span[1], f"encoding MP3 ({duration:.1f} s of audio)")
        run(ctx, lambda reporter: encode(joined, out, fmt=fmt), stage=AUDIO_STAGE, percent=span[1])
        return duration
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
