"""The built-in generator: a writer, then a voice, then one audio file.

``PODFLOW_GENERATOR=podflow.generation.builtin:generate`` (the default). Two
settings choose its parts, in any combination:

- PODFLOW_LLM: who writes (:mod:`.writers`): ``none``, the built-in
  extractive writer (offline, deterministic), or ``openai``, an
  OpenAI-compatible chat-completions endpoint with structured output;
- PODFLOW_TTS: who speaks (:mod:`.voices`): ``espeak`` (espeak-ng, offline),
  ``openai`` (an OpenAI-compatible ``/audio/speech`` endpoint), or ``none``.

Stages, as reported to ``ctx.progress`` (overall percent)::

    outline      0     the writer outlines the sources      -> outline.json
    transcript  10     the writer writes the dialogue        -> transcript.json
    audio       20-95  the voice speaks each turn (one report per turn),
                       joined with pauses, encoded           -> episode.mp3 | episode.wav
    done       100

With ``PODFLOW_TTS=none`` there is no audio stage (transcript at 50) and the
result has no ``audio_path``. Files go in ``ctx.work_dir`` under fixed
names; the episode name never becomes a path. Each stage is a pure function
of its inputs (:class:`~.writers.OutlineJob`, :class:`~.writers.TranscriptJob`,
:class:`~.voices.Clip`), each with an input-derived ``key()`` under which its
result is a checkpoint (``ctx.checkpoints``): the outline, the transcript and
each clip an earlier attempt (or the run this one retries) finished are
reused, not paid for again, and progress says so (``reused the outline``,
``reused 171 of 180 clips``). Change the profile, the briefing or a model and
the keys change: the stages they feed are computed again.

Raises (besides what podflow interrupts it with):
  ToolMissing: espeak-ng (PODFLOW_TTS=espeak) or ffmpeg (MP3, provider voices) is not installed.
  GenerationError: a speaker's voice is unknown to espeak-ng, the sources
    hold no text, espeak-ng or ffmpeg failed, a provider refused the request
    (ProviderRejected) or the LLM's replies were unusable (UnusableReply).
  TransientGenerationError: espeak-ng timed out on a turn, or a provider
    stayed unavailable or rate limited (ProviderUnavailable, ProviderRateLimited).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import cast

from ..checkpoints import Checkpoints
from ..errors import GenerationError
from .audio import AudioFormat, find_ffmpeg
from .base import GenerationContext, GenerationRequest, GenerationResult, GeneratorConfig
from .episode import AUDIO_STAGE, render_episode
from .files import write_json
from .outline import Outline
from .transcript import Transcript
from .voices import Clip, EspeakVoice, ProviderVoice, Voice
from .writers import ExtractiveWriter, OutlineJob, TranscriptJob, Writer
from .writers.llm import LLMWriter

__all__ = ["OUTLINE_FILE", "TRANSCRIPT_FILE", "audio_file", "generate"]

OUTLINE_FILE = "outline.json"
TRANSCRIPT_FILE = "transcript.json"
#: silence between two turns, and between the last turn of a part and the next
TURN_PAUSE_S = 0.35
SECTION_PAUSE_S = 0.8
_WRITERS = ("none", "openai")
_VOICES = ("espeak", "openai", "none")
_FORMATS = ("mp3", "wav")


def audio_file(fmt: str) -> str:
    """The episode's file name: ``episode.mp3`` or ``episode.wav``."""
    return f"episode.{fmt}"


def generate(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Outline, transcript and (unless PODFLOW_TTS=none) the episode's audio for ``request``."""
    config = ctx.config
    writer = _writer(config)
    voice = _voice(config)
    fmt = _format(config)
    if voice is not None:  # fail before any work (or any paid call) rather than at the first turn
        voice.check(request.speaker_profile)
        if fmt == "mp3":
            find_ffmpeg()
    work = Path(ctx.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    checkpoints = ctx.checkpoints
    ctx.progress("outline", 0, f"outlining {len(request.sources)} source(s)")
    outline_job = OutlineJob.of(request, writer=writer.name, model=writer.model_for(request.episode_profile))
    outline = checkpoints.value(
        outline_job.key(),
        lambda: writer.outline(outline_job, ctx, percent=0),
        stage="outline",
        encode=Outline.to_json,
        decode=Outline.from_json,
    )
    outline_path = write_json(work / OUTLINE_FILE, outline.to_json())

    percent = 10 if voice is not None else 50
    ctx.progress(
        "transcript", percent, _reused(checkpoints, "outline") or f"writing {len(outline.segments)} segment(s)"
    )
    transcript_job = TranscriptJob(outline_job, outline, request.speaker_profile)
    transcript = checkpoints.value(
        transcript_job.key(),
        lambda: writer.transcript(transcript_job, ctx, percent=percent),
        stage="transcript",
        encode=Transcript.to_json,
        decode=lambda data: Transcript.from_json(data, speakers=request.speaker_profile, segments=outline.segments),
    )
    transcript_path = write_json(work / TRANSCRIPT_FILE, transcript.to_json())
    if voice is None:
        ctx.progress("done", 100, f"{transcript.length}; no audio (PODFLOW_TTS=none){_summary(checkpoints)}")
        return GenerationResult(transcript_path=transcript_path, outline_path=outline_path)

    audio_path = work / audio_file(fmt)
    reused_transcript = _reused(checkpoints, "transcript")
    ctx.progress(AUDIO_STAGE, 20, f"{reused_transcript + '; ' if reused_transcript else ''}"
                 f"speaking {len(transcript.turns)} turns")  # fmt: skip
    duration_s = render_episode(
        voice, _clips(transcript, voice), audio_path, pauses_s=_pauses(transcript), fmt=fmt, ctx=ctx
    )
    ctx.progress("done", 100, f"{transcript.length}, {duration_s:.1f} s of audio{_summary(checkpoints)}")
    return GenerationResult(
        transcript_path=transcript_path,
        outline_path=outline_path,
        audio_path=audio_path,
        duration_s=round(duration_s, 3),
    )


def _reused(checkpoints: Checkpoints, stage: str) -> str:
    """``reused the outline`` when the stage's result came from a checkpoint, else ``""``."""
    tally = checkpoints.tally().get(stage)
    if tally is None or not tally.reused:
        return ""
    return f"reused the {stage}" + (" of the retried run" if tally.inherited else "")


def _summary(checkpoints: Checkpoints) -> str:
    """``; reused outline, transcript and 171 of 180 clips (173 from the retried run)``, or ``""``."""
    tally = checkpoints.tally()
    parts = []
    for stage, counts in tally.items():
        if counts.reused:
            total = counts.reused + counts.computed
            parts.append(
                stage if total == 1 else f"{counts.reused} of {total} {'clips' if stage == AUDIO_STAGE else stage}"
            )
    if not parts:
        return ""
    inherited = sum(t.inherited for t in tally.values())
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"; reused {listed}" + (f" ({inherited} from the retried run)" if inherited else "")


def _writer(config: GeneratorConfig) -> Writer:
    if config.llm == "none":
        return ExtractiveWriter()
    if config.llm == "openai":
        if config.llm_provider is None:
            raise GenerationError("PODFLOW_LLM=openai but no LLM endpoint is configured (PODFLOW_LLM_BASE_URL)")
        return LLMWriter(provider=config.llm_provider, reasks=config.llm_reasks, source_chars=config.llm_source_chars)
    raise GenerationError(f"unknown PODFLOW_LLM={config.llm!r}; use one of: {', '.join(_WRITERS)}")


def _voice(config: GeneratorConfig) -> Voice | None:
    if config.tts == "none":
        return None
    if config.tts == "espeak":
        return EspeakVoice(timeout_s=config.tts_timeout_s, parallelism=config.tts_parallelism)
    if config.tts == "openai":
        if config.tts_provider is None:
            raise GenerationError("PODFLOW_TTS=openai but no TTS endpoint is configured (PODFLOW_TTS_BASE_URL)")
        return ProviderVoice(provider=config.tts_provider, parallelism=config.tts_parallelism)
    raise GenerationError(f"unknown PODFLOW_TTS={config.tts!r}; use one of: {', '.join(_VOICES)}")


def _format(config: GeneratorConfig) -> AudioFormat:
    if config.audio_format not in _FORMATS:
        raise GenerationError(f"unknown PODFLOW_AUDIO_FORMAT={config.audio_format!r}; use one of: mp3, wav")
    return cast(AudioFormat, config.audio_format)


def _clips(transcript: Transcript, voice: Voice) -> list[Clip]:
    voices = {speaker.name: speaker.voice for speaker in transcript.speakers.speakers}
    model = voice.model_for(transcript.speakers)
    return [
        Clip(speaker=turn.speaker, voice=voices[turn.speaker], text=turn.text, engine=voice.name, model=model)
        for turn in transcript.turns
    ]


def _pauses(transcript: Transcript) -> list[float]:
    return [
        TURN_PAUSE_S if (a.part, a.segment) == (b.part, b.segment) else SECTION_PAUSE_S
        for a, b in pairwise(transcript.turns)
    ]
