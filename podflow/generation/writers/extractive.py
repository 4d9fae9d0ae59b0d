"""The built-in extractive writer (PODFLOW_LLM=none): offline and deterministic.

The outline picks the sources' key sentences (:mod:`..outline`), the
transcript frames them as a dialogue in the episode's language
(:mod:`..transcript`, :mod:`..framing`).
"""

from __future__ import annotations

from ...models import EpisodeProfile
from ..base import GenerationContext
from ..outline import Outline, build_outline
from ..transcript import Transcript, build_transcript
from .base import OutlineJob, TranscriptJob

__all__ = ["ExtractiveWriter"]


class ExtractiveWriter:
    name = "extractive"

    def model_for(self, profile: EpisodeProfile) -> str:
        return ""

    def outline(self, job: OutlineJob, ctx: GenerationContext, *, percent: float) -> Outline:
        return build_outline(job)

    def transcript(self, job: TranscriptJob, ctx: GenerationContext, *, percent: float) -> Transcript:
        return build_transcript(job, job.outline)
