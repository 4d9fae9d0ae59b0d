"""podcast-creator behind podflow, for teams migrating from the old module.

``pip install 'podflow[podcast-creator]'``, then
``PODFLOW_GENERATOR=podflow.generation.podcast_creator:generate``. The run is
podcast-creator's own pipeline (its prompts, LangGraph, its ffmpeg), reached
through the same endpoints as podflow's own generator:

- outline and transcript: PODFLOW_LLM_BASE_URL, PODFLOW_LLM_API_KEY,
  PODFLOW_LLM_MODEL (or the episode profile's ``llm_model``), through
  podcast-creator's ``openai`` provider (esperanto and langchain-openai);
- speech: PODFLOW_TTS_BASE_URL, PODFLOW_TTS_API_KEY, PODFLOW_TTS_MODEL (or the
  speaker profile's ``tts_model``), through esperanto's ``openai-compatible``
  TTS; ``speaker.voice`` is the provider's voice, and podcast-creator insists
  on a different one per speaker of a profile.

The profiles map onto podcast-creator's configuration (speaker profile ->
its speaker profile with ``voice_id``, ``backstory`` and ``personality``;
episode profile -> ``num_segments``, ``language``, the briefing). Its files
are written under ``ctx.work_dir/podcast-creator/``; podflow keeps
``outline.json`` and ``transcript.json`` in its own shape (turns with
``speaker`` and ``text``) and the episode as ``episode.mp3``.

Retries: podcast-creator retries a failed call itself (tenacity); podflow sets
that layer from PODFLOW_PROVIDER_RETRIES and PODFLOW_PROVIDER_BACKOFF. What
still fails is classified here: 429s (``openai.RateLimitError`` from the
LLM, the ``RuntimeError("...Too many concurrent requests...")`` its TTS path
raises), timeouts, connection errors and 5xx are transient (podflow retries
the run); other refusals fail it, naming the setting. The openai SDK inside
langchain-openai keeps its own default of two retries for LLM calls
(esperanto exposes no setting for it), and PODFLOW_*_MAX_CONCURRENCY does not
apply to podcast-creator's calls (it makes them itself, TTS_BATCH_SIZE at a
time).

Progress: its clips appear in its output directory as they are spoken, and
are reported as they do. Cancellation: the pipeline runs on podflow's
background loop, so a cancel closes its requests and kills its ffmpeg.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import openai

from ..errors import GenerationError, TransientGenerationError
from ..models import SpeakerProfile
from ..sources import source_prose
from ..timeutil import utcnow
from .audio import measure_seconds
from .base import GenerationContext, GenerationRequest, GenerationResult
from .files import write_json
from .loop import Reporter, run
from .outline import Outline, Segment
from .providers.calls import Provider
from .providers.errors import classify
from .transcript import Transcript, Turn

try:
    from podcast_creator import configure, create_podcast
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        f"podflow.generation.podcast_creator needs podcast-creator: pip install 'podflow[podcast-creator]' ({exc})"
    ) from exc

__all__ = ["generate"]

_OUTPUT = "podcast-creator"
_AUDIO_FILE = "episode.mp3"
#: how often the output directory is looked at for new clips
_WATCH_S = 0.25
#: what podcast-creator's TTS path says when the provider answered 429
_RATE_LIMITED = ("too many concurrent requests", "rate limit", "429")
_TRANSIENT_CAUSES: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)

# podcast-creator keeps its configuration in one process-wide object: every
# speaker profile in use stays registered, so concurrent runs never replace
# each other's.
_speaker_configs: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def generate(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Outline, transcript and ``episode.mp3`` by podcast-creator.

    Raises:
      GenerationError: a profile podcast-creator cannot take (repeated voices),
        a refusal by a provider (naming the setting), or its own failure.
      TransientGenerationError: rate limits, timeouts, connection errors, 5xx.
    """
    llm, tts = _providers(ctx)
    speaker_config = _register(request.speaker_profile, tts)
    work = Path(ctx.work_dir)
    output = work / _OUTPUT
    ctx.progress("outline", 0, f"podcast-creator: outline and transcript by {_model(request, llm)}")

    async def work_on_loop(reporter: Reporter) -> dict[str, Any]:
        return await _create(request, ctx, reporter, output, speaker_config, llm)

    try:
        result = run(ctx, work_on_loop, stage="outline", percent=0)
    except Exception as exc:  # interrupts are BaseExceptions: they pass
        raise _classified(exc, llm, tts, llm_model=_model(request, llm)) from exc

    outline, transcript = _outline(request, result), _transcript(request, result)
    outline_path = write_json(work / "outline.json", outline.to_json())
    transcript_path = write_json(work / "transcript.json", transcript.to_json())
    audio = Path(result["final_output_file_path"])
    audio_path = work / _AUDIO_FILE
    os.replace(audio, audio_path)
    duration_s = run(ctx, lambda reporter: measure_seconds(audio_path), stage="audio", percent=95)
    ctx.progress("done", 100, f"{transcript.length}, {duration_s:.1f} s of audio")
    return GenerationResult(
        outline_path=outline_path,
        transcript_path=transcript_path,
        audio_path=audio_path,
        duration_s=round(duration_s, 3),
    )


def _providers(ctx: GenerationContext) -> tuple[Provider, Provider]:
    llm, tts = ctx.config.llm_provider, ctx.config.tts_provider
    if llm is None or tts is None:
        raise GenerationError("podcast-creator needs the LLM and TTS endpoints (PODFLOW_LLM_*, PODFLOW_TTS_*)")
    return llm, tts


def _connection(provider: Provider) -> dict[str, Any]:
    """esperanto's configuration of an endpoint."""
    endpoint = provider.endpoint
    return {"base_url": endpoint.base_url, "api_key": endpoint.api_key or "unused", "timeout": endpoint.timeout_s}


def _model(request: GenerationRequest, llm: Provider) -> str:
    return request.episode_profile.llm_model or llm.endpoint.model


def _register(profile: SpeakerProfile, tts: Provider) -> str:
    """Register ``profile`` with podcast-creator; the name it goes by.

    Raises:
      GenerationError: two speakers share a voice (podcast-creator refuses that).
    """
    seen: dict[str, int] = {}
    for i, speaker in enumerate(profile.speakers):
        if speaker.voice in seen:
            raise GenerationError(
                f"speaker profile {profile.name!r}, speakers[{i}].voice: podcast-creator needs a different "
                f"voice for each speaker ({speaker.voice!r} is also speakers[{seen[speaker.voice]}]'s)"
            )
        seen[speaker.voice] = i
    config = {
        "tts_provider": "openai-compatible",
        "tts_model": profile.tts_model or tts.endpoint.model,
        "tts_config": _connection(tts),
        "speakers": [
            {"name": s.name, "voice_id": s.voice, "backstory": s.personality, "personality": s.personality}
            for s in profile.speakers
        ],
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    name = f"podflow_{profile.name}_{digest}"  # an edited profile never replaces a running run's
    with _lock:
        if name not in _speaker_configs:
            _speaker_configs[name] = config
            configure("speakers_config", {"profiles": dict(_speaker_configs)})
    return name


async def _create(
    request: GenerationRequest,
    ctx: GenerationContext,
    reporter: Reporter,
    output: Path,
    speaker_config: str,
    llm: Provider,
) -> dict[str, Any]:
    llm_config = _connection(llm)
    policy = llm.policy
    task = asyncio.ensure_future(
        create_podcast(
            content=[source_prose(source) for source in request.sources],
            briefing=request.briefing or f"An episode called {request.episode_name}.",
            episode_name="episode",  # becomes a file name: never the user's text
            output_dir=str(output),
            speaker_config=speaker_config,
            num_segments=request.episode_profile.num_segments,
            outline_provider="openai",
            outline_model=_model(request, llm),
            transcript_provider="openai",
            transcript_model=_model(request, llm),
            outline_config=dict(llm_config),
            transcript_config=dict(llm_config),
            retry_max_attempts=policy.retries + 1,
            retry_wait_multiplier=policy.backoff_s,  # seconds; it rounds down to int
            language=request.episode_profile.language,
        )
    )
    clips = output / "clips"
    spoken = 0
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=_WATCH_S)
            count = len(list(clips.glob("*.mp3"))) if clips.is_dir() else 0
            if count > spoken:
                spoken = count
                reporter.progress("audio", min(90.0, 20 + spoken), f"podcast-creator: {spoken} clip(s) spoken")
        created: dict[str, Any] = task.result()
        return created
    finally:
        if not task.done():  # cancelled: cancel podcast-creator's own task too, and let it clean up
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _classified(exc: BaseException, llm: Provider, tts: Provider, *, llm_model: str) -> GenerationError:
    """podcast-creator's failure as podflow's: transient or not, naming the setting where one is to blame."""
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, GenerationError):
            return link
        if isinstance(link, openai.OpenAIError):
            failure = classify(link, llm.endpoint, now=utcnow(), model=llm_model)
            if failure is not None:
                return failure.error()
    message = f"podcast-creator: {type(exc).__name__}: {exc}"
    text = " ".join(str(link) for link in chain).lower()
    if any(sign in text for sign in _RATE_LIMITED):
        return TransientGenerationError(f"{message} (rate limited by {tts.endpoint.label})")
    if any(isinstance(link, _TRANSIENT_CAUSES) or _is_http_transport_error(link) for link in chain):
        return TransientGenerationError(message)
    return GenerationError(message)


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in found:
        found.append(link)
        link = link.__cause__ or link.__context__
    return found


def _is_http_transport_error(exc: BaseException) -> bool:
    """httpx's timeouts and connection errors (esperanto's TTS calls), without importing httpx's flavours."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore") and any(
        word in type(exc).__name__ for word in ("Timeout", "Connect", "Network", "RemoteProtocol")
    )


def _outline(request: GenerationRequest, result: dict[str, Any]) -> Outline:
    segments = tuple(
        Segment(
            index=i,
            title=segment.name,
            source_ids=tuple(source.source_id for source in request.sources),
            key_points=(segment.description,),
            keywords=(),
        )
        for i, segment in enumerate(result["outline"].segments, start=1)
    )
    return Outline(episode_name=request.episode_name, requested_segments=len(segments), segments=segments)


def _transcript(request: GenerationRequest, result: dict[str, Any]) -> Transcript:
    turns = tuple(Turn(speaker=d.speaker, text=d.dialogue, part="segment") for d in result["transcript"])
    return Transcript(
        episode_name=request.episode_name,
        speakers=request.speaker_profile,
        segments=(),
        turns=turns,
        language=request.episode_profile.language,
    )
