"""Provider-backed runs with real ``dramatiq podflow.actors`` workers and the fake provider.

One fake provider serves the module (reset before each test). Each test starts
the workers its settings need, on a private redis-server; their runs go
through the real SDK over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from podflow import lifecycle
from podflow.dispatch.queue import QueueDispatcher
from podflow.generation.providers import Endpoint, SharedSlots
from podflow.generation.providers.slots import shared_backend
from podflow.lifecycle import submit
from podflow.models import EpisodeProfile, Run, RunRequest, Source
from podflow.profiles import BUNDLED_SPEAKER_PROFILES
from podflow.settings import load_settings
from podflow.sources import ingest_source
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import SPEAKERS, WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.fake_provider import FakeProvider, Reply

pytestmark = pytest.mark.slow

API_KEY = "sk-podflow-test"
CHINESE_TEXT = "# 科技周报\n\n## 可回收火箭\n轨道助推器第二十次成功降落在无人船上。可回收火箭把成本降低了很多。\n"
CHINESE_EPISODE = EpisodeProfile(name="zh_brief", num_segments=1, words_per_segment=60, language="zh")


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(seconds_per_char=0.01) as fake:
        yield fake


@dataclass
class Stack:
    """A store, a dispatcher, and the workers a test started, all on one data dir and Redis."""

    data_dir: Path
    redis_url: str
    fake: FakeProvider
    store: SqliteStore
    dispatcher: QueueDispatcher
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self, *, processes: int = 1, threads: int = 2, **settings: str) -> WorkerProcess:
        values = {
            "PODFLOW_GENERATOR": "podflow.generation.builtin:generate",
            "PODFLOW_LLM": "openai",
            "PODFLOW_LLM_BASE_URL": self.fake.url,
            "PODFLOW_LLM_API_KEY": API_KEY,
            "PODFLOW_LLM_MODEL": "fake-llm",
            "PODFLOW_TTS": "openai",
            "PODFLOW_TTS_BASE_URL": self.fake.url,
            "PODFLOW_TTS_MODEL": "fake-tts",
            "PODFLOW_PROVIDER_BACKOFF": "0.05",
            **settings,
        }
        env = worker_env(data_dir=self.data_dir, broker_url=self.redis_url, **values)
        log = self.data_dir / f"worker-{len(self.workers)}.log"
        argv = [str(Path(sys.executable).parent / "dramatiq"), "podflow.actors",
                "--processes", str(processes), "--threads", str(threads)]  # fmt: skip
        worker = WorkerProcess(env, log, argv)
        self.workers.append(worker)
        return worker.start()

    def submit(self, name: str = "Provider episode", **fields: Any) -> Run:
        base = request(name).model_dump()
        return submit(self.store, self.dispatcher, RunRequest(**{**base, **fields}), now=utcnow()).run

    def finished(self, run: Run, timeout: float = 30) -> Run:
        return finished(self.store, run.run_id, timeout=timeout)

    def transcript(self, run: Run) -> dict[str, Any]:
        assert run.result is not None and run.result.transcript_path
        return json.loads((self.data_dir / run.result.transcript_path).read_text(encoding="utf-8"))

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.workers)


@contextlib.contextmanager
def open_stack(redis_url: str, data_dir: Path, fake: FakeProvider) -> Iterator[Stack]:
    """A seeded store and a dispatcher on ``redis_url``, ``fake`` reset; the workers started are stopped."""
    fake.reset()
    fake.latency_s.clear()
    fake.api_key = None
    store = seed(SqliteStore(data_dir / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    # the workers' heartbeat settings (worker_env), so the sweep's broker counts a killed worker dead as soon
    settings = load_settings(env_file=None, broker_url=redis_url, heartbeat_interval_s=0.2, heartbeat_timeout_s=1.5)
    dispatcher = QueueDispatcher(broker=build_broker(settings))
    made = Stack(data_dir, redis_url, fake, store, dispatcher)
    try:
        yield made
    finally:
        for worker in made.workers:
            worker.stop()
        close_broker(dispatcher.broker)
        store.close()


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, provider: FakeProvider) -> Iterator[Stack]:
    with open_stack(redis_url, tmp_path, provider) as made:
        yield made


def clip_seconds(fake: FakeProvider, text: str) -> float:
    """How long the fake's clip for ``text`` is (to the sample)."""
    return round(min(30.0, max(0.2, len(text) * fake.seconds_per_char)) * 24000) / 24000


def decoded_seconds(path: Path) -> float:
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:1"]
    return len(subprocess.run(command, capture_output=True, check=True).stdout) / 2 / 24000


def test_an_llm_written_episode_spoken_by_the_provider_is_one_mp3_of_the_joined_clips(stack: Stack) -> None:
    stack.start()
    done = stack.finished(stack.submit())
    assert done.status is RunStatus.SUCCESS and done.attempt == 1, done.error
    assert done.result is not None and done.result.audio_path == f"podcasts/{done.run_id}/episode.mp3"
    turns = stack.transcript(done)["turns"]
    assert turns and all(re.fullmatch(r"Fake text \d+\.", t["text"]) for t in turns)  # the fake's content
    assert {t["speaker"] for t in turns} <= {s.name for s in SPEAKERS.speakers}
    spoken = sorted(c.body["input"] for c in stack.fake.calls("speech"))
    assert spoken == sorted(t["text"] for t in turns)
    pauses = [0.35 if (a["part"], a["segment"]) == (b["part"], b["segment"]) else 0.8 for a, b in pairwise(turns)]
    expected = sum(clip_seconds(stack.fake, t["text"]) for t in turns) + sum(pauses)
    assert done.result.duration_s == pytest.approx(expected, abs=0.001)
    assert decoded_seconds(stack.data_dir / done.result.audio_path) == pytest.approx(expected, abs=0.005)
    chat = stack.fake.calls("chat")
    assert [c.body["response_format"]["json_schema"]["name"] for c in chat] == ["outline", "transcript"]
    assert {c.body["model"] for c in chat} == {"fake-llm"}


def test_a_429_storm_is_waited_out_in_the_attempt_never_sooner_than_retry_after(stack: Stack) -> None:
    stack.start()
    stack.fake.script("speech", *[Reply(status=429, headers={"Retry-After": "2"})] * 3)
    done = stack.finished(stack.submit())
    assert done.status is RunStatus.SUCCESS and done.attempt == 1, done.error
    calls = sorted(stack.fake.calls("speech"), key=lambda c: c.started)
    refused = [c for c in calls if c.status == 429]
    assert len(refused) == 3
    for no in refused:
        assert no.ended is not None
        again = next(c for c in calls if c.started > no.started and c.body["input"] == no.body["input"])
        assert again.started - no.ended >= 2.0  # the refused turn, asked again: not before Retry-After
        # and the 429 held every call of the process: none was sent in the 2 s after it (those in
        # flight when it came, sent before the client knew, excepted)
        assert not [c for c in calls if no.ended + 0.1 < c.started < no.ended + 2.0]


def test_a_401_from_the_llm_fails_the_run_at_once_naming_the_api_key_setting(stack: Stack) -> None:
    stack.fake.api_key = "sk-something-else"
    stack.start()
    done = stack.finished(stack.submit())
    assert done.status is RunStatus.FAILURE and done.attempt == 1
    assert done.error is not None and done.error.type == "ProviderRejected"
    assert f"LLM at {stack.fake.url} answered 401: check PODFLOW_LLM_API_KEY" in done.error.message
    assert len(stack.fake.calls("chat")) == 1 and not stack.fake.calls("speech")


def test_the_tts_cap_holds_across_worker_processes_and_a_killed_workers_slots_come_back(stack: Stack) -> None:
    settings = {"PODFLOW_LLM": "none", "PODFLOW_TTS_MAX_CONCURRENCY": "3"}
    workers = [stack.start(threads=4, **settings) for _ in range(2)]
    stack.fake.latency_s["speech"] = 0.15
    submitted = [stack.submit(f"Capped {i}") for i in range(8)]
    done = [stack.finished(run, timeout=60) for run in submitted]
    assert {run.status for run in done} == {RunStatus.SUCCESS}
    assert 1 < stack.fake.peak("speech") <= 3
    assert len(pids(stack)) == 2  # both worker processes took runs

    slots = SharedSlots(
        backend=shared_backend(stack.redis_url),
        name=Endpoint(kind="tts", base_url=stack.fake.url, model="x").slot_name,
        limit=3,
        ttl_s=1.5,
        refresh_s=0.2,
    )
    try:
        stack.fake.latency_s["speech"] = 60  # every call hangs, holding its slot
        stack.submit("Held")
        wait_for(lambda: slots.in_use() == 3, timeout=20, what="three TTS calls to hold their slots")
        for worker in workers:
            worker.kill()
        killed = time.monotonic()
        wait_for(lambda: slots.in_use() == 0, timeout=5, interval=0.02, what="the slots to expire")
        assert time.monotonic() - killed <= 1.5 + 0.25  # PODFLOW_HEARTBEAT_TIMEOUT, plus the polling
        held = [slots.try_acquire() for _ in range(3)]
        assert all(held)
        for slot in held:
            slot.release()  # type: ignore[union-attr]
    finally:
        slots.close()


def closed_call(fake: FakeProvider, timeout: float = 5) -> Any:
    """The first chat request the worker closed before its answer came."""
    return wait_for(lambda: next((c for c in fake.calls("chat") if c.aborted), None), timeout=timeout, what="abort")


def pids(stack: Stack) -> set[int]:
    """The worker processes that executed runs, from their log lines."""
    return {int(pid) for pid in re.findall(r"\[PID (\d+)\].*attempt 1 succeeded", stack.logs())}


def test_a_cancel_during_a_60_s_llm_reply_revokes_the_run_and_frees_its_thread_within_two_heartbeats(
    stack: Stack,
) -> None:
    interval = 0.5
    stack.start(threads=1, PODFLOW_HEARTBEAT_INTERVAL=str(interval), PODFLOW_HEARTBEAT_TIMEOUT="3")
    stack.fake.script("chat", Reply(hang_s=60))
    run = stack.submit("Hung")
    wait_for(lambda: stack.fake.in_flight("chat") == 1, timeout=20, what="the LLM call")
    cancelled = time.time()
    assert lifecycle.cancel(stack.store, run.run_id, now=utcnow()).status is RunStatus.REVOKED
    hung = closed_call(stack.fake)
    assert hung.ended is not None and hung.ended - cancelled <= 2 * interval  # the request was closed
    # the worker's only thread is free again: the next run starts at once
    following = stack.submit("Next")
    started = wait_for(lambda: (r := stack.store.get_run(following.run_id)) and r.started_at and r, timeout=5)
    assert started.started_at.timestamp() - cancelled <= 2 * interval + 0.5
    assert stack.finished(following).status is RunStatus.SUCCESS
    assert stack.store.get_run(run.run_id).status is RunStatus.REVOKED  # type: ignore[union-attr]


def test_the_soft_time_limit_during_a_hung_llm_call_closes_it_and_fails_the_run(stack: Stack) -> None:
    interval = 0.2
    stack.start(threads=1, PODFLOW_SOFT_TIME_LIMIT="1.5", PODFLOW_HEARTBEAT_INTERVAL=str(interval))
    stack.fake.script("chat", Reply(hang_s=60))
    run = stack.submit("Hung past its limit")
    wait_for(lambda: stack.fake.in_flight("chat") == 1, timeout=20, what="the LLM call")
    done = stack.finished(run, timeout=10)
    assert done.status is RunStatus.FAILURE and done.attempt == 1
    assert done.error is not None and done.error.type == "soft_time_limit"
    hung = closed_call(stack.fake)
    # closed at the limit, not after the 60 s the reply would take (slack for a loaded machine)
    assert hung.ended is not None and hung.ended - done.started_at.timestamp() <= 1.5 + 5
    # its thread is free: the next run starts (whether it ends within the short limit does not matter here)
    following = stack.submit("Next")
    wait_for(lambda: stack.store.get_run(following.run_id).started_at, timeout=20, what="the next run to start")  # type: ignore[union-attr]


def test_a_worker_that_lost_its_lease_in_a_hung_llm_call_closes_it_and_writes_nothing(stack: Stack) -> None:
    """A worker frozen (SIGSTOP) past the heartbeat timeout during an LLM call; another
    attempt takes the run meanwhile. Resumed, the worker interrupts its attempt at once (the
    store has not confirmed the lease for the heartbeat timeout), closes the request and
    leaves the run to the attempt that holds it."""
    interval = 0.2
    worker = stack.start(threads=1, PODFLOW_HEARTBEAT_INTERVAL=str(interval), PODFLOW_HEARTBEAT_TIMEOUT="1.5")
    stack.fake.script("chat", Reply(hang_s=60))
    run = stack.submit("Frozen")
    wait_for(lambda: stack.fake.in_flight("chat") == 1, timeout=20, what="the LLM call")
    with worker.frozen(stack.store.path):
        taken = wait_for(lambda: stack.store.claim(run.run_id, now=utcnow()), timeout=10, what="a stale heartbeat")
    resumed = time.time()
    assert taken == 2
    hung = closed_call(stack.fake, timeout=10)
    assert hung.ended is not None and hung.ended - resumed <= 5  # at once, not in 60 s (slack for a loaded machine)
    wait_for(lambda: "attempt 1 lost: lease lost" in stack.logs(), timeout=5, what="the worker to give the run up")
    held = stack.store.get_run(run.run_id)
    assert held is not None and held.status is RunStatus.STARTED and held.attempt == 2
    assert held.history[-1].attempt == 2  # nothing written by attempt 1 after the takeover
    assert stack.finished(stack.submit("Next"), timeout=20).status is RunStatus.SUCCESS  # its thread is free


def test_a_run_the_sweep_fails_during_a_hung_llm_call_is_given_up_at_the_next_heartbeat(stack: Stack) -> None:
    interval = 0.2
    stack.start(threads=1, PODFLOW_HEARTBEAT_INTERVAL=str(interval))
    stack.fake.script("chat", Reply(hang_s=60))
    run = stack.submit("Past its time limit")
    wait_for(lambda: stack.fake.in_flight("chat") == 1, timeout=20, what="the LLM call")
    policy = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0)
    assert sweep(stack.store, now=utcnow() + timedelta(seconds=61), policy=policy).time_limit == 1
    failed = time.time()
    hung = closed_call(stack.fake)
    assert hung.ended is not None and hung.ended - failed <= 5  # the next heartbeat, not in 60 s (with slack)
    wait_for(lambda: "attempt 1 lost: lease lost" in stack.logs(), timeout=5, what="the worker to give the run up")
    done = stack.store.get_run(run.run_id)
    assert done is not None and done.status is RunStatus.FAILURE and done.error is not None
    assert done.error.type == "time_limit"  # the sweep's outcome stands
    assert stack.finished(stack.submit("Next"), timeout=20).status is RunStatus.SUCCESS  # its thread is free


def chinese_source() -> Source:
    return ingest_source(
        content=CHINESE_TEXT, title=None, filename="zh.md", content_type=None, max_bytes=10_000, now=utcnow()
    )


def test_a_chinese_episode_with_the_built_in_writer_and_cmn_voices(stack: Stack) -> None:
    speakers = next(p for p in BUNDLED_SPEAKER_PROFILES if p.name == "dual_host_zh")
    stack.store.seed_profiles([CHINESE_EPISODE, speakers], now=utcnow())
    source = chinese_source()
    stack.store.add_source(source)
    stack.start(PODFLOW_LLM="none", PODFLOW_TTS="espeak")
    run = stack.submit(
        "科技周报", episode_profile="zh_brief", speaker_profile="dual_host_zh", source_ids=[source.source_id]
    )
    done = stack.finished(run)
    assert done.status is RunStatus.SUCCESS, done.error
    transcript = stack.transcript(done)
    texts = [t["text"] for t in transcript["turns"]]
    assert texts[0].startswith("欢迎收听科技周报。我是小明。今天和我一起的有小红。")
    assert texts[-1] == "感谢收听，再见！"
    assert not any(re.search(r"[。！？，][.!?,]|[.!?,][。！？，]", text) for text in texts)
    characters = sum(len(re.findall(r"[\u4e00-\u9fff]", text)) for text in texts)
    assert transcript["word_count"] == characters
    assert done.progress is not None and done.progress.message.startswith(f"{characters:,} characters, ")


OUTLINE = {"segments": [{"name": "Queues", "description": "Why podcasts need queues.", "size": "short"}]}
DIALOGUE = {
    "transcript": [
        {"speaker": "Ada", "dialogue": "Why do podcasts need a queue?"},
        {"speaker": "Linus", "dialogue": "Because they take an hour."},
        {"speaker": "Ada", "dialogue": "Fair enough."},
    ]
}


def test_podcast_creator_through_the_extra_retries_a_429_from_its_tts_path(stack: Stack) -> None:
    stack.start(PODFLOW_GENERATOR="podflow.generation.podcast_creator:generate")
    stack.fake.script("chat", Reply(content=OUTLINE), Reply(content=DIALOGUE))
    stack.fake.script("speech", Reply(status=429, error="Too many concurrent requests"))
    done = stack.finished(stack.submit("Migrated", source_ids=request().source_ids), timeout=60)
    assert done.status is RunStatus.SUCCESS and done.attempt == 1, done.error
    assert [c.status for c in stack.fake.calls("speech")].count(429) == 1
    assert [t["text"] for t in stack.transcript(done)["turns"]] == [d["dialogue"] for d in DIALOGUE["transcript"]]
    assert done.result is not None and done.result.audio_path and done.result.audio_path.endswith("episode.mp3")
    assert decoded_seconds(stack.data_dir / done.result.audio_path) == pytest.approx(done.result.duration_s, abs=0.01)
