"""The benchmark's generator: PODFLOW_GENERATOR=bench.generators:noop."""

from __future__ import annotations

from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult

__all__ = ["noop"]


def noop(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Returns at once, with no files: what is timed is podflow's own bookkeeping."""
    return GenerationResult()
