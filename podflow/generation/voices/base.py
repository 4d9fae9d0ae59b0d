"""Voices: who speaks the transcript (PODFLOW_TTS).

A voice turns :class:`Clip` values into WAV files (mono 16-bit PCM, one rate
for every clip of a voice). A clip's audio depends only on the clip (speaker,
voice, model, text, format), so :mod:`podflow.generation.episode` keeps each
clip as a checkpoint under ``clip.key()``, asks the voice only for the clips it
does not have, and stores each one the voice hands to ``on_clip`` as soon as it
is complete.

Voices: :class:`~.espeak.EspeakVoice` (``espeak``) and
:class:`~.openai.ProviderVoice` (``openai``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ...models import SpeakerProfile
from ..base import GenerationContext
from ..keys import input_key

__all__ = ["Clip", "OnClip", "Span", "Voice", "turn_progress"]

#: the overall percents a voice reports between (the audio stage's share of the run)
Span = tuple[float, float]
#: called with a clip's index and its complete WAV, as soon as it is spoken
OnClip = Callable[[int, Path], None]


@dataclass(frozen=True, slots=True)
class Clip:
    """One turn to speak, and everything its audio depends on."""

    speaker: str
    voice: str
    text: str
    #: the engine and its model (``espeak``/``""``, ``openai``/``tts-1``) and what it is asked for
    engine: str
    model: str = ""
    format: str = "wav"

    def key(self) -> str:
        return input_key("clip", asdict(self))


def turn_progress(done: int, total: int, span: Span) -> tuple[str, float, str]:
    """The progress report after ``done`` of ``total`` turns were spoken."""
    start, end = span
    return "audio", start + (end - start) * done / total, f"spoke turn {done} of {total}"


class Voice(Protocol):
    #: ``espeak`` or ``openai``: each clip's engine
    name: str

    def model_for(self, profile: SpeakerProfile) -> str:
        """The model that speaks for ``profile`` (``""`` for espeak-ng)."""

    def check(self, profile: SpeakerProfile) -> None:
        """Refuse a profile this voice cannot speak, before any work. Raises GenerationError."""

    def speak(
        self, clips: Sequence[Clip], out_dir: Path, ctx: GenerationContext, *, span: Span, on_clip: OnClip | None = None
    ) -> list[Path]:
        """A WAV per clip in ``out_dir``, in clip order, reporting each turn spoken.

        ``on_clip(index, path)`` runs once per clip, as soon as its file is
        complete (a checkpoint is kept then), in any thread; what it raises
        ends the speaking. A clip whose audio arrived is handed on before an
        interrupt stops the voice: what was paid for is kept.

        Raises GenerationError (or a subclass); the caller owns ``out_dir``.
        """
