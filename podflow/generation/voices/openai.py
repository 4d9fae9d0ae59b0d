"""Provider voices (PODFLOW_TTS=openai): an OpenAI-compatible ``/audio/speech`` endpoint.

One request per turn (``model``, ``voice``, ``input``, ``response_format=wav``),
up to PODFLOW_TTS_PARALLELISM of one run at once and PODFLOW_TTS_MAX_CONCURRENCY
across the cluster, each decoded by ffmpeg to mono 16-bit PCM at 24 kHz as it
arrives (whatever the server actually sends). ``speaker.voice`` is the
provider's voice name (``alloy``, ``af_bella``); a voice the server does not
know fails the run, naming it. The model is the speaker profile's
``tts_model``, else PODFLOW_TTS_MODEL.

The first clip to fail for good stops the others (their requests are
closed); a permanent failure wins over a transient one. A clip whose audio
arrived is decoded and handed to ``on_clip`` (a checkpoint) even when an
interrupt comes meanwhile: a request paid for is never lost to a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import GenerationError, TransientGenerationError
from ...models import SpeakerProfile
from ..audio import decode_to_wav, find_ffmpeg
from ..base import GenerationContext
from ..loop import Reporter, run
from ..providers.calls import Provider
from .base import Clip, OnClip, Span, turn_progress

if TYPE_CHECKING:  # the SDK loads with the first call (podflow.generation.providers.calls)
    from openai import AsyncOpenAI

__all__ = ["ProviderVoice"]

#: what podflow asks the server for: lossless, and every OpenAI-compatible server offers it
RESPONSE_FORMAT = "wav"


class ProviderVoice:
    """Parameters: the TTS ``provider``; ``parallelism`` requests of one run at once."""

    name = "openai"

    def __init__(self, *, provider: Provider, parallelism: int) -> None:
        self.provider = provider
        self.parallelism = parallelism

    def model_for(self, profile: SpeakerProfile) -> str:
        return profile.tts_model or self.provider.endpoint.model

    def check(self, profile: SpeakerProfile) -> None:
        find_ffmpeg()  # the clips are decoded by it: fail before paying for any

    def speak(
        self, clips: Sequence[Clip], out_dir: Path, ctx: GenerationContext, *, span: Span, on_clip: OnClip | None = None
    ) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"turn_{i:04d}.wav" for i in range(len(clips))]
        run(ctx, lambda reporter: self._speak(clips, paths, reporter, span, on_clip), stage="audio", percent=span[0])
        return paths

    async def _speak(
        self, clips: Sequence[Clip], paths: list[Path], reporter: Reporter, span: Span, on_clip: OnClip | None
    ) -> None:
        gate = asyncio.Semaphore(max(1, self.parallelism))
        done = 0

        async def one(index: int, clip: Clip) -> None:
            nonlocal done
            async with gate:

                async def send(client: AsyncOpenAI) -> Any:
                    return await client.audio.speech.create(
                        model=clip.model, voice=clip.voice, input=clip.text, response_format=RESPONSE_FORMAT  # type: ignore[arg-type]
                    )

                response = await self.provider.call(send, reporter=reporter, model=clip.model, voice=clip.voice)
                await _even_if_cancelled(_keep(response.content, paths[index], index, on_clip))
            done += 1
            reporter.progress(*turn_progress(done, len(clips), span))

        try:
            async with asyncio.TaskGroup() as group:
                for index, clip in enumerate(clips):
                    group.create_task(one(index, clip))
        except BaseExceptionGroup as failures:
            raise _worst(failures) from None


async def _keep(audio: bytes, path: Path, index: int, on_clip: OnClip | None) -> None:
    await decode_to_wav(audio, path, what=f"the audio of turn {index + 1}")
    if on_clip is not None:  # file system work (fsync): off the loop
        await asyncio.to_thread(on_clip, index, path)


async def _even_if_cancelled(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even if this task is cancelled meanwhile, then
    let the cancellation through (a clip paid for is kept before the voice stops)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _worst(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure that decides the run: a permanent one before a transient one."""
    found: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            found.append(exc)

    flatten(group)
    permanent = (e for e in found if isinstance(e, GenerationError) and not isinstance(e, TransientGenerationError))
    return next(permanent, found[0])
