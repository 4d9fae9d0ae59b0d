"""Generators for execution tests, selected with PODFLOW_GENERATOR=tests.generators:NAME.

Each appends one JSON line per event to the file PODFLOW_TEST_EVENTS names (if
set), so a test can see which attempts ran, when, in which process, and when
an interrupt landed. ``by_name`` picks its behaviour from the episode name, so
one worker process can serve many tests.

Settings read (test-only; the settings typo check ignores PODFLOW_TEST_*):
  PODFLOW_TEST_EVENTS   file to append events to
  PODFLOW_TEST_SLOW_S   how long ``slow`` runs (default 3 s)
  PODFLOW_TEST_HOST     which (simulated) host the worker runs on, recorded in each event
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from podflow.errors import TransientGenerationError
from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult
from podflow.generation.keys import input_key

STEP_S = 0.05


def _event(ctx: GenerationContext, event: str, **fields: object) -> None:
    path = os.environ.get("PODFLOW_TEST_EVENTS")
    if not path:
        return
    line = json.dumps(
        {
            "event": event,
            "run_id": ctx.run_id,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "t": time.time(),
            "host": os.environ.get("PODFLOW_TEST_HOST", ""),
            **fields,
        }
    )
    with open(path, "a", encoding="utf-8") as f:  # one short append: atomic enough across processes
        f.write(line + "\n")


def _write_result(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    transcript = Path(ctx.work_dir) / "transcript.txt"
    transcript.write_text(f"{request.episode_name}: {len(request.sources)} source(s)\n", encoding="utf-8")
    outline = Path(ctx.work_dir) / "outline.md"
    outline.write_text(f"# {request.episode_name}\n", encoding="utf-8")
    return GenerationResult(transcript_path=transcript, outline_path=Path("outline.md"), duration_s=1.5)


def noop(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Writes a transcript and an outline at once."""
    _event(ctx, "start")
    result = _write_result(request, ctx)
    _event(ctx, "end")
    return result


def slow(request: GenerationRequest, ctx: GenerationContext, seconds: float | None = None) -> GenerationResult:
    """Steps of 50 ms for PODFLOW_TEST_SLOW_S seconds, reporting progress and
    checking for cancellation, with a partial artifact in the work dir."""
    duration = seconds if seconds is not None else float(os.environ.get("PODFLOW_TEST_SLOW_S", "3"))
    # before "start", which tests wait for before they interrupt
    (Path(ctx.work_dir) / "partial.wav").write_bytes(b"RIFF partial")
    steps = max(1, int(duration / STEP_S))
    try:  # from the start event: an interrupt is raised asynchronously, even between two lines
        _event(ctx, "start")
        for step in range(steps):
            if step % 4 == 0:
                ctx.progress("speaking", 100 * step / steps, f"step {step}")
            ctx.check_cancelled()
            time.sleep(STEP_S)
    except BaseException as exc:
        _event(ctx, "interrupted", error=type(exc).__name__)
        raise
    result = _write_result(request, ctx)
    _event(ctx, "end")
    return result


def flaky(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Fails transiently on the first attempt, then succeeds."""
    _event(ctx, "start")
    if ctx.attempt == 1:
        _event(ctx, "transient")
        raise TransientGenerationError("the model is rate limited")
    result = _write_result(request, ctx)
    _event(ctx, "end")
    return result


def broken(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """A bug: always raises ValueError."""
    _event(ctx, "start")
    (Path(ctx.work_dir) / "partial.wav").write_bytes(b"RIFF partial")
    raise ValueError("boom: the generator has a bug")


def steps(
    request: GenerationRequest, ctx: GenerationContext, count: int = 10, seconds: float = 0.3
) -> GenerationResult:
    """``count`` steps of ``seconds``, each a checkpoint (a later attempt reuses them)."""
    _event(ctx, "start")
    for step in range(count):
        ctx.checkpoints.value(input_key("step", step), lambda: time.sleep(seconds), stage="steps")
    return noop(request, ctx)


def by_name(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Dispatch on the episode name: ``noop``, ``flaky``, ``broken``, ``steps``, ``slow``,
    ``slow:<seconds>`` or ``slow:<seconds on attempt 1>,<seconds after>``."""
    name, _, arg = request.episode_name.partition(":")
    if name == "slow":
        durations = [float(s) for s in arg.split(",")] if arg else [None]  # type: ignore[list-item]
        return slow(request, ctx, durations[min(ctx.attempt, len(durations)) - 1])
    return {"noop": noop, "flaky": flaky, "broken": broken, "steps": steps}[name](request, ctx)


def read_events(path: Path) -> list[dict[str, object]]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
