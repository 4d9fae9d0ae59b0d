"""The benchmark's generators: PODFLOW_GENERATOR=bench.generators:noop (or :hold)."""

from __future__ import annotations

import os
import time

from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult

__all__ = ["hold", "noop"]


def noop(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Returns at once, with no files: what is timed is podflow's own bookkeeping."""
    return GenerationResult()


def hold(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """A long run that does nothing but wait: sleeps BENCH_HOLD_S seconds (60),
    reporting progress every BENCH_PROGRESS_S (2), as a real generation reports
    its stages. What the fleet benchmark (:mod:`bench.fleet`) keeps in flight."""
    total_s = float(os.environ.get("BENCH_HOLD_S", "60"))
    every_s = float(os.environ.get("BENCH_PROGRESS_S", "2"))
    began = time.monotonic()
    step = 0
    while (elapsed := time.monotonic() - began) < total_s:
        ctx.progress("hold", 100 * elapsed / total_s, f"step {step}")
        step += 1
        time.sleep(min(every_s, total_s - elapsed))
    return GenerationResult()
