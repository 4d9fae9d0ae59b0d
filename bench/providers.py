"""Benchmark: podflow's overhead on provider-backed runs whose provider calls take a known time.

The fake provider (``python -m tests.fake_provider``, its own process) answers
every chat completion after ``provider_chat_s`` and every speech request after
``provider_speech_s``. A run of the built-in generator with PODFLOW_LLM=openai
and PODFLOW_TTS=openai makes two chat completions one after the other (outline,
transcript) and one speech request per turn, PODFLOW_TTS_PARALLELISM at a time,
so its ideal makespan (the provider's time alone) is::

    ideal = 2 * provider_chat_s + ceil(turns / parallelism) * provider_speech_s

A batch of N runs submitted together on N worker threads (no cap) ideally takes
as long as its slowest run. The figure is makespan ÷ ideal (1.0 = no overhead),
for 1 run and for N concurrent runs; makespan runs from just before the first
submit to the last ``finished_at``. What podflow adds: dispatch, claim,
heartbeats and progress writes, the SDK and HTTP, ffmpeg decoding each clip and
encoding the MP3, joining the clips, promoting the files, finish.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from podflow.cli.worker import command as podflow_worker_command
from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, request, seed, wait_for
from tests.servers import free_port

from .report import Row
from .scale import Scale
from .stats import Figure
from .systems import BenchError, clean_env

__all__ = ["ideal_s", "measure"]

#: PODFLOW_TTS_PARALLELISM of the workers (the default)
PARALLELISM = 4


def ideal_s(turns: int, *, chat_s: float, speech_s: float, parallelism: int = PARALLELISM) -> float:
    """The provider's time alone for one run of ``turns`` turns."""
    return 2 * chat_s + math.ceil(turns / parallelism) * speech_s


class _Fake:
    """The fake provider in its own process."""

    def __init__(self, *, chat_s: float, speech_s: float, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        argv = [sys.executable, "-m", "tests.fake_provider", "--port", str(self.port),
                "--latency-chat", str(chat_s), "--latency-speech", str(speech_s)]  # fmt: skip
        self.proc = WorkerProcess(clean_env(), log, argv, ready_text="fake provider on")

    def __enter__(self) -> _Fake:
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop(timeout=5)


def measure(
    scale: Scale, work_dir: Path, redis_url: str, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, object]]:
    chat_s, speech_s, concurrent = scale.provider_chat_s, scale.provider_speech_s, scale.provider_concurrent
    data_dir = work_dir / "providers"
    with _Fake(chat_s=chat_s, speech_s=speech_s, log=work_dir / "fake-provider.log") as fake:
        settings = load_settings(
            env_file=None,
            data_dir=data_dir,
            broker_url=redis_url,
            worker_processes=scale.processes,
            concurrency=scale.threads,
        )
        env = clean_env(
            PODFLOW_DATA_DIR=str(data_dir),
            PODFLOW_BROKER_URL=redis_url,
            PODFLOW_LLM="openai",
            PODFLOW_LLM_BASE_URL=fake.url,
            PODFLOW_TTS="openai",
            PODFLOW_TTS_BASE_URL=fake.url,
            PODFLOW_TTS_PARALLELISM=str(PARALLELISM),
        )
        store = seed(SqliteStore(settings.sqlite_path, heartbeat_timeout_s=settings.heartbeat_timeout_s))
        dispatcher = QueueDispatcher(broker=build_broker(settings))
        worker = WorkerProcess(env, work_dir / "providers-worker.log", podflow_worker_command(settings))
        try:
            worker.start()
            wait_for(lambda: worker.log().count("ready for action") >= scale.processes, timeout=30, what="workers")
            batch(store, dispatcher, 1, data_dir)  # warm-up: imports, connections, the first ffmpeg
            ratios: dict[int, list[float]] = {1: [], concurrent: []}
            overheads: dict[int, list[float]] = {1: [], concurrent: []}
            raw: list[dict[str, object]] = []
            for rep in range(scale.reps):
                for n in (1, concurrent):
                    makespan, turns = batch(store, dispatcher, n, data_dir)
                    ideal = max(ideal_s(t, chat_s=chat_s, speech_s=speech_s) for t in turns)
                    ratios[n].append(makespan / ideal)
                    overheads[n].append((makespan - ideal) * 1000)
                    raw.append({"runs": n, "makespan_s": makespan, "ideal_s": ideal, "turns": turns})
                    log(f"providers: rep {rep + 1}/{scale.reps}, {n} run(s): {makespan:.2f} s, ideal {ideal:.2f} s")
        finally:
            worker.stop(timeout=30)
            close_broker(dispatcher.broker)
            store.close()
    setup = (f"chat {chat_s:g} s, speech {speech_s:g} s per call, {scale.processes} x {scale.threads} "
             f"worker threads, TTS parallelism {PARALLELISM}")  # fmt: skip
    rows = []
    for n in (1, concurrent):
        what = "1 run" if n == 1 else f"{n} concurrent runs"
        shown = f"{what}: makespan / ideal" + (f" ({setup})" if n == 1 else "")
        rows.append(Row("Provider overhead", shown, "x", Figure.of(ratios[n])))
        rows.append(Row("Provider overhead", f"{what}: makespan - ideal", "ms", Figure.of(overheads[n])))
    return rows, {"providers": raw}


def batch(store: SqliteStore, dispatcher: QueueDispatcher, n: int, data_dir: Path) -> tuple[float, list[int]]:
    """Submit ``n`` runs together and wait for them; the makespan and each run's turns."""
    started = time.time()
    ids = []
    for i in range(n):
        submission = submit(store, dispatcher, request(f"Provider run {i}"), now=utcnow())
        if not submission.enqueued:
            raise BenchError(f"podflow could not enqueue: {submission.error}")
        ids.append(submission.run.run_id)

    def all_done() -> list[Run] | None:
        found = [store.get_run(run_id) for run_id in ids]
        return found if all(run is not None and run.is_terminal for run in found) else None  # type: ignore[return-value]

    done = wait_for(all_done, timeout=120, interval=0.02, what=f"{n} provider run(s)")
    failed = [run for run in done if run.status is not RunStatus.SUCCESS]
    if failed:
        raise BenchError(f"{len(failed)} provider run(s) failed: {failed[0].error}")
    last = max(run.finished_at.timestamp() for run in done if run.finished_at is not None)
    turns = [_turns(data_dir, run) for run in done]
    return last - started, turns


def _turns(data_dir: Path, run: Run) -> int:
    assert run.result is not None and run.result.transcript_path is not None
    return len(json.loads((data_dir / run.result.transcript_path).read_text(encoding="utf-8"))["turns"])
