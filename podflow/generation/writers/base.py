"""Writers: who writes the outline and the transcript (PODFLOW_LLM).

A writer has two stages, each a pure function of its job: the same job always
gives the same result (the LLM aside, which is why its result is worth
keeping), so a checkpoint layer can store a stage's result under
``job.key()`` and reuse it instead of calling the writer again.

======================  ==============================================
``outline(job, ctx)``   :class:`OutlineJob` -> :class:`~..outline.Outline`
``transcript(job,ctx)`` :class:`TranscriptJob` -> :class:`~..transcript.Transcript`
======================  ==============================================

Writers: :class:`~.extractive.ExtractiveWriter` (``none``, the built-in
extractive writer) and :class:`~.llm.LLMWriter` (``openai``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ...models import EpisodeProfile, Source, SpeakerProfile
from ..base import GenerationContext, GenerationRequest
from ..keys import input_key
from ..outline import Outline
from ..transcript import Transcript

__all__ = ["OutlineJob", "TranscriptJob", "Writer"]


def _sources(sources: tuple[Source, ...]) -> list[dict[str, str]]:
    return [{"id": s.source_id, "sha256": s.sha256, "title": s.title} for s in sources]


@dataclass(frozen=True, slots=True)
class OutlineJob:
    """What an outline depends on: sources, episode profile, briefing, model, language."""

    episode_name: str
    episode_profile: EpisodeProfile
    sources: tuple[Source, ...]
    briefing: str
    #: the writer and its model (``extractive``/``""``, ``llm``/``gpt-4o-mini``)
    writer: str
    model: str = ""

    @classmethod
    def of(cls, request: GenerationRequest, *, writer: str, model: str = "") -> OutlineJob:
        return cls(
            episode_name=request.episode_name,
            episode_profile=request.episode_profile,
            sources=tuple(request.sources),
            briefing=request.briefing,
            writer=writer,
            model=model,
        )

    @property
    def language(self) -> str:
        return self.episode_profile.language

    def inputs(self) -> dict[str, Any]:
        return {
            "writer": self.writer,
            "model": self.model,
            "episode_name": self.episode_name,
            "profile": self.episode_profile.model_dump(mode="json", exclude={"name", "description"}),
            "sources": _sources(self.sources),
            "briefing": self.briefing,
        }

    def key(self) -> str:
        return input_key("outline", self.inputs())


@dataclass(frozen=True, slots=True)
class TranscriptJob:
    """What a transcript depends on: the outline, the speakers (names and personalities,
    not voices) and the outline's own inputs."""

    outline_job: OutlineJob
    outline: Outline
    speaker_profile: SpeakerProfile

    @property
    def episode_name(self) -> str:
        return self.outline_job.episode_name

    @property
    def episode_profile(self) -> EpisodeProfile:
        return self.outline_job.episode_profile

    @property
    def sources(self) -> tuple[Source, ...]:
        return self.outline_job.sources

    @property
    def briefing(self) -> str:
        return self.outline_job.briefing

    @property
    def model(self) -> str:
        return self.outline_job.model

    @property
    def language(self) -> str:
        return self.outline_job.language

    def key(self) -> str:
        # what a writer reads of the speakers: their names and personalities, in order. Not
        # their voices: those only speak the transcript (each clip's key has its voice), so a
        # voice fixed after a refusal reuses the transcript and re-speaks only its clips
        speakers = [{"name": s.name, "personality": s.personality} for s in self.speaker_profile.speakers]
        return input_key(
            "transcript",
            {"outline_job": self.outline_job.inputs(), "outline": self.outline.to_json(), "speakers": speakers},
        )


class Writer(Protocol):
    #: ``extractive`` or ``llm``: part of every job's key
    name: str

    def model_for(self, profile: EpisodeProfile) -> str:
        """The model that writes for ``profile`` (``""`` for a writer without one)."""

    def outline(self, job: OutlineJob, ctx: GenerationContext, *, percent: float) -> Outline:
        """The outline of ``job``, reporting progress (stage ``outline``) at ``percent``.

        Raises GenerationError (or a subclass) when it cannot.
        """

    def transcript(self, job: TranscriptJob, ctx: GenerationContext, *, percent: float) -> Transcript:
        """The transcript of ``job``, reporting progress (stage ``transcript``) at ``percent``.

        Raises GenerationError (or a subclass) when it cannot.
        """
