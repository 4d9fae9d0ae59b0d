"""espeak-ng's voices (PODFLOW_TTS=espeak): offline, a subprocess per turn (:mod:`..speech`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import GenerationError, InvalidInput
from ...models import SpeakerProfile
from ...profiles import check_speaker_profile
from ..base import GenerationContext
from ..speech import SpeechJob, synthesize
from .base import Clip, OnClip, Span, turn_progress

__all__ = ["EspeakVoice"]


class EspeakVoice:
    """Parameters: ``timeout_s`` per turn (PODFLOW_TTS_TIMEOUT), ``parallelism`` processes at once."""

    name = "espeak"

    def __init__(self, *, timeout_s: float, parallelism: int) -> None:
        self.timeout_s = timeout_s
        self.parallelism = parallelism

    def model_for(self, profile: SpeakerProfile) -> str:
        return ""

    def check(self, profile: SpeakerProfile) -> None:
        try:
            check_speaker_profile(profile, tts="espeak")
        except InvalidInput as exc:
            raise GenerationError(f"speaker profile {profile.name!r}, {exc.field}: {exc}") from None

    def speak(
        self, clips: Sequence[Clip], out_dir: Path, ctx: GenerationContext, *, span: Span, on_clip: OnClip | None = None
    ) -> list[Path]:
        return synthesize(
            [SpeechJob(voice=clip.voice, text=clip.text) for clip in clips],
            out_dir=out_dir,
            timeout_s=self.timeout_s,
            parallelism=self.parallelism,
            check=ctx.check_cancelled,
            on_done=lambda done, total: ctx.progress(*turn_progress(done, total, span)),
            on_wav=on_clip,
        )
