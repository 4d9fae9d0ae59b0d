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
:class:`~.voices.Clip`), each with an input-derived ``key()``.

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

from ..errors import GenerationError
from .audio import AudioFormat, find_ffmpeg
from .base import GenerationContext, GenerationRequest, GenerationResult, GeneratorConfig
from .episode import render_episode
from .files import write_json
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

    ctx.progress("outline", 0, f"outlining {len(request.sources)} source(s)")
    outline_job = OutlineJob.of(request, writer=writer.name, model=writer.model_for(request.episode_profile))
    outline = writer.outline(outline_job, ctx, percent=0)
    outline_path = write_json(work / OUTLINE_FILE, outline.to_json())

    percent = 10 if voice is not None else 50
    ctx.progress("transcript", percent, f"writing {len(outline.segments)} segment(s)")
    transcript_job = TranscriptJob(outline_job, outline, request.speaker_profile)
    transcript = writer.transcript(transcript_job, ctx, percent=percent)
    transcript_path = write_json(work / TRANSCRIPT_FILE, transcript.to_json())
    if voice is None:
        ctx.progress("done", 100, f"{transcript.length}; no audio (PODFLOW_TTS=none)")
        return GenerationResult(transcript_path=transcript_path, outline_path=outline_path)

    audio_path = work / audio_file(fmt)
    ctx.progress("audio", 20, f"speaking {len(transcript.turns)} turns")
    duration_s = render_episode(
        voice, _clips(transcript, voice), audio_path, pauses_s=_pauses(transcript), fmt=fmt, ctx=ctx
    )
    ctx.progress("done", 100, f"{transcript.length}, {duration_s:.1f} s of audio")
    return GenerationResult(
        transcript_path=transcript_path,
        outline_path=outline_path,
        audio_path=audio_path,
        duration_s=round(duration_s, 3),
    )


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
