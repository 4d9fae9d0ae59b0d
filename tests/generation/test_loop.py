"""The background loop: work off the generator's thread, its progress passed on, interrupts that cancel it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from dramatiq.threading import raise_thread_exception

from podflow.errors import GenerationError, RunCancelled
from podflow.generation.context import LocalContext
from podflow.generation.loop import Reporter, loop, run


def context(tmp_path: Path, **kw: object) -> LocalContext:
    return LocalContext(run_id="run_" + "0" * 32, work_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_work_runs_on_the_loop_and_its_result_and_progress_come_back(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    seen: list[int] = []

    async def work(reporter: Reporter) -> str:
        seen.append(threading.get_ident())
        reporter.progress("audio", 40, "half way")
        reporter.note("still at it")
        await asyncio.sleep(0.01)
        return "done"

    assert run(ctx, work, stage="audio", percent=20) == "done"
    assert seen != [threading.get_ident()]
    assert [(e.stage, e.percent, e.message) for e in ctx.events] == [
        ("audio", 40, "half way"),
        ("audio", 40, "still at it"),
    ]


def test_what_the_work_raises_is_raised_in_the_generators_thread(tmp_path: Path) -> None:
    async def work(reporter: Reporter) -> None:
        raise GenerationError("nope")

    with pytest.raises(GenerationError, match="nope"):
        run(context(tmp_path), work, stage="x", percent=0)

    async def times_out(reporter: Reporter) -> None:
        raise TimeoutError("the work's own timeout, not the wait's")

    with pytest.raises(TimeoutError, match="the work's own"):
        run(context(tmp_path), times_out, stage="x", percent=0)


def test_a_cancelled_run_cancels_the_work_and_waits_for_its_clean_up(tmp_path: Path) -> None:
    cancel = threading.Event()
    cleaned = threading.Event()

    async def work(reporter: Reporter) -> None:
        try:
            cancel.set()
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # a clean-up that takes a moment: run() waits for it
            cleaned.set()

    began = time.monotonic()
    with pytest.raises(RunCancelled):
        run(context(tmp_path, cancel_event=cancel), work, stage="x", percent=0)
    assert cleaned.is_set() and time.monotonic() - began < 2


def test_an_asynchronous_interrupt_of_the_waiting_thread_cancels_the_work(tmp_path: Path) -> None:
    """What podflow does on cancel, lost lease or soft time limit: raise in the generator's thread."""
    started, cancelled, outcome = threading.Event(), threading.Event(), []

    async def work(reporter: Reporter) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def generator() -> None:
        try:
            run(context(tmp_path), work, stage="x", percent=0)
        except BaseException as exc:  # the test inspects what ended the thread
            outcome.append(exc)

    thread = threading.Thread(target=generator)
    thread.start()
    assert started.wait(5)
    raise_thread_exception(thread.ident, RunCancelled)
    thread.join(5)
    assert not thread.is_alive() and [type(e) for e in outcome] == [RunCancelled] and cancelled.is_set()


def test_work_cancelled_before_it_started_is_not_waited_for(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    blocker = threading.Event()
    loop().call_soon_threadsafe(blocker.wait, 0.3)  # the loop is busy: the work cannot start yet
    ran = []

    async def work(reporter: Reporter) -> None:
        ran.append(1)

    began = time.monotonic()
    with pytest.raises(RunCancelled):
        run(context(tmp_path, cancel_event=cancel), work, stage="x", percent=0)
    assert time.monotonic() - began < 2 and ran == []
