"""The built-in generator: offline, deterministic, spoken by espeak-ng.

``PODFLOW_GENERATOR=podflow.generation.builtin:generate`` (the default).
The same request always gives the same outline, transcript and audio.

Stages, as reported to ``ctx.progress`` (overall percent)::

    outline      0     extract segments from the sources   -> outline.json
    transcript  10     write the dialogue                   -> transcript.json
    audio       20-95  speak each turn (one report per turn), join -> episode.wav
    done       100

With ``PODFLOW_TTS=none`` there is no audio stage (transcript at 50) and the
result has no ``audio_path``. Files go in ``ctx.work_dir`` under fixed
names; the episode name never becomes a path.

Raises (besides what podflow interrupts it with):
  ToolMissing: PODFLOW_TTS=espeak and espeak-ng is not installed.
  GenerationError: a speaker's voice is unknown to espeak-ng, the sources
    hold no text, or espeak-ng failed.
  TransientGenerationError: espeak-ng timed out on a turn.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from ..errors import GenerationError, InvalidInput
from ..models import SpeakerProfile
from ..profiles import check_speaker_profile
from .base import GenerationContext, GenerationRequest, GenerationResult
from .files import write_json
from .outline import build_outline
from .speech import SpeechJob, render_audio
from .transcript import Transcript, build_transcript

__all__ = ["AUDIO_FILE", "OUTLINE_FILE", "TRANSCRIPT_FILE", "generate"]

OUTLINE_FILE = "outline.json"
TRANSCRIPT_FILE = "transcript.json"
AUDIO_FILE = "episode.wav"
#: silence between two turns, and between the last turn of a part and the next
TURN_PAUSE_S = 0.35
SECTION_PAUSE_S = 0.8
_TTS_ENGINES = ("espeak", "none")


def generate(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Outline, transcript and (with espeak) ``episode.wav`` for ``request``."""
    tts = ctx.config.tts
    if tts not in _TTS_ENGINES:
        raise GenerationError(f"unknown PODFLOW_TTS={tts!r}; use one of: {', '.join(_TTS_ENGINES)}")
    speaking = tts == "espeak"
    if speaking:  # fail before any work rather than at the first turn
        _check_voices(request.speaker_profile)
    work = Path(ctx.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    ctx.progress("outline", 0, f"outlining {len(request.sources)} source(s)")
    outline = build_outline(request)
    outline_path = write_json(work / OUTLINE_FILE, outline.to_json())

    ctx.progress("transcript", 10 if speaking else 50, f"writing {len(outline.segments)} segment(s)")
    transcript = build_transcript(request, outline)
    transcript_path = write_json(work / TRANSCRIPT_FILE, transcript.to_json())
    if not speaking:
        ctx.progress("done", 100, f"{transcript.word_count} words; no audio (PODFLOW_TTS=none)")
        return GenerationResult(transcript_path=transcript_path, outline_path=outline_path)

    audio_path = work / AUDIO_FILE
    duration_s = _speak(transcript, audio_path, ctx)
    ctx.progress("done", 100, f"{transcript.word_count} words, {duration_s:.1f} s of audio")
    return GenerationResult(
        transcript_path=transcript_path,
        outline_path=outline_path,
        audio_path=audio_path,
        duration_s=round(duration_s, 3),
    )


def _check_voices(profile: SpeakerProfile) -> None:
    try:
        check_speaker_profile(profile, tts="espeak")
    except InvalidInput as exc:
        raise GenerationError(f"speaker profile {profile.name!r}, {exc.field}: {exc}") from None


def _speak(transcript: Transcript, out: Path, ctx: GenerationContext) -> float:
    voices = {speaker.name: speaker.voice for speaker in transcript.speakers.speakers}
    jobs = [SpeechJob(voice=voices[turn.speaker], text=turn.text) for turn in transcript.turns]
    pauses = [
        TURN_PAUSE_S if (a.part, a.segment) == (b.part, b.segment) else SECTION_PAUSE_S
        for a, b in pairwise(transcript.turns)
    ]

    def on_done(done: int, total: int) -> None:
        ctx.progress("audio", 20 + 75 * done / total, f"spoke turn {done} of {total}")

    ctx.progress("audio", 20, f"speaking {len(jobs)} turns")
    return render_audio(
        jobs,
        out,
        pauses_s=pauses,
        timeout_s=ctx.config.tts_timeout_s,
        parallelism=ctx.config.tts_parallelism,
        check=ctx.check_cancelled,
        on_done=on_done,
    )
