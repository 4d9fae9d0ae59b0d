"""The LLM writer (PODFLOW_LLM=openai): outline, then transcript, by chat completions.

Each stage is one chat completion with structured output (:mod:`.schema`):
``response_format={"type": "json_schema", "json_schema": {"name",
"strict": true, "schema"}}``, the speakers an ``enum``, the counts
``minItems``/``maxItems``. A reply that cannot be used (not JSON, an unknown
speaker, blank text, too few or too many items, cut off at the output limit,
a refusal) is asked again with the problem in the prompt, PODFLOW_LLM_REASKS
times at most; then the run fails (:class:`UnusableReply`) quoting the
problem. So a stage costs 1 to 1 + PODFLOW_LLM_REASKS completions.

The model is the episode profile's ``llm_model``, else PODFLOW_LLM_MODEL. The
calls go through :class:`~podflow.generation.providers.Provider` (cap,
429 waits, retries) on the background loop, so cancellation closes a pending
request at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ....models import EpisodeProfile
from ...base import GenerationContext
from ...loop import Reporter, run
from ...outline import Outline, Segment
from ...providers.calls import Provider
from ...providers.errors import UnusableReply
from ...transcript import Transcript, Turn
from ..base import OutlineJob, TranscriptJob
from .prompts import Material, Message, condense, outline_messages, reask, transcript_messages
from .schema import (
    Counts,
    OutlineReply,
    TranscriptReply,
    outline_schema,
    parse_outline,
    parse_transcript,
    problem,
    transcript_schema,
)

if TYPE_CHECKING:  # the SDK loads with the first call (podflow.generation.providers.calls)
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion

__all__ = ["LLMWriter"]

R = TypeVar("R", OutlineReply, TranscriptReply)


class LLMWriter:
    """Writes with an OpenAI-compatible chat-completions endpoint.

    Parameters:
      provider: the LLM endpoint with its cap and retries.
      reasks: how many times an unusable reply is asked again (PODFLOW_LLM_REASKS).
      source_chars: the sources' budget in characters (PODFLOW_LLM_SOURCE_CHARS).
    """

    name = "llm"

    def __init__(self, *, provider: Provider, reasks: int = 2, source_chars: int = 60_000) -> None:
        self.provider = provider
        self.reasks = reasks
        self.source_chars = source_chars

    def model_for(self, profile: EpisodeProfile) -> str:
        return profile.llm_model or self.provider.endpoint.model

    # -- stages -----------------------------------------------------------------------------
    def outline(self, job: OutlineJob, ctx: GenerationContext, *, percent: float = 0) -> Outline:
        """Raises UnusableReply, ProviderRejected, ProviderUnavailable, ProviderRateLimited."""
        material = self._material(job)
        counts = Counts.of(job.episode_profile)
        ctx.progress("outline", percent, f"asking {job.model} for {counts.segments} segment(s); {material.note()}")
        schema = outline_schema(counts, [source.source_id for source in job.sources])
        messages = outline_messages(job, material, counts)
        reply = self._reply(ctx, "outline", percent, job.model, schema, messages, counts, parse_outline)
        segments = tuple(
            Segment(
                index=i,
                title=segment.title,
                source_ids=tuple(dict.fromkeys(segment.sources)),
                key_points=tuple(segment.points),
                keywords=(),
            )
            for i, segment in enumerate(reply.segments, start=1)
        )
        return Outline(episode_name=job.episode_name, requested_segments=counts.segments, segments=segments)

    def transcript(self, job: TranscriptJob, ctx: GenerationContext, *, percent: float = 10) -> Transcript:
        """Raises UnusableReply, ProviderRejected, ProviderUnavailable, ProviderRateLimited."""
        material = self._material(job.outline_job)
        counts = Counts.of(job.episode_profile, tuple(s.name for s in job.speaker_profile.speakers))
        ctx.progress(
            "transcript", percent, f"asking {job.model} for the dialogue of {counts.segments} segment(s) "
            f"among {len(counts.speakers)} speaker(s)"
        )  # fmt: skip
        schema = transcript_schema(counts)
        messages = transcript_messages(job, material, counts)
        reply = self._reply(ctx, "transcript", percent, job.model, schema, messages, counts, parse_transcript)
        turns = [Turn(t.speaker, t.text, "intro") for t in reply.intro]
        for segment, said in zip(job.outline.segments, reply.segments, strict=True):
            turns += [Turn(t.speaker, t.text, "segment", segment.index) for t in said.turns]
        turns += [Turn(t.speaker, t.text, "outro") for t in reply.outro]
        return Transcript(
            episode_name=job.episode_name,
            speakers=job.speaker_profile,
            segments=job.outline.segments,
            turns=tuple(turns),
            language=job.language,
        )

    # -- one structured completion, asked again until usable ------------------------------------
    def _material(self, job: OutlineJob) -> Material:
        return condense(job.sources, budget_chars=self.source_chars)

    def _reply(
        self,
        ctx: GenerationContext,
        what: str,
        percent: float,
        model: str,
        schema: dict[str, Any],
        messages: list[Message],
        counts: Counts,
        parse: Callable[[str, Counts], R],
    ) -> R:
        """The usable reply for stage ``what``, asked on the background loop (interruptible)."""

        def ask(reporter: Reporter) -> Awaitable[R]:
            return self._ask(reporter, model, what, schema, messages, counts, parse)

        return run(ctx, ask, stage=what, percent=percent)

    async def _ask(
        self,
        reporter: Reporter,
        model: str,
        what: str,
        schema: dict[str, Any],
        messages: list[Message],
        counts: Counts,
        parse: Callable[[str, Counts], R],
    ) -> R:
        rounds = 1 + self.reasks
        response_format: Any = {"type": "json_schema", "json_schema": {"name": what, "strict": True, "schema": schema}}
        for round_ in range(1, rounds + 1):

            async def send(client: AsyncOpenAI, messages: list[Message] = messages) -> ChatCompletion:
                return await client.chat.completions.create(
                    model=model, messages=messages, response_format=response_format  # type: ignore[arg-type]
                )

            completion = await self.provider.call(send, reporter=reporter, model=model)
            content, trouble = _content(completion)
            if trouble is None:
                try:
                    return parse(content, counts)
                except ValidationError as exc:
                    trouble = problem(exc)
            if round_ == rounds:
                raise UnusableReply(
                    f"{self.provider.endpoint.label} ({model}) gave no usable {what} in {rounds} "
                    f"repl{'y' if rounds == 1 else 'ies'}; the last one: {trouble}"
                )
            reporter.note(f"the {what} reply was unusable ({trouble}); asking again ({round_ + 1} of {rounds})")
            messages = reask(messages, content, trouble)
        raise AssertionError("unreachable")


def _content(completion: ChatCompletion) -> tuple[str, str | None]:
    """The reply's text, and what makes it unusable before parsing (None if nothing)."""
    if not completion.choices:
        return "", "the reply has no choices"
    choice = completion.choices[0]
    content = choice.message.content or ""
    refusal = getattr(choice.message, "refusal", None)
    if refusal:
        return content, f"the model refused: {refusal}"
    if choice.finish_reason == "length":
        return content, "the reply was cut off at the model's output limit (finish_reason=length)"
    if not content.strip():
        return content, "the reply is empty"
    return content, None
