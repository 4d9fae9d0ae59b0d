"""Checkpoints with real ``dramatiq podflow.actors`` workers and the fake provider counting calls.

Each test interrupts a provider-backed run mid-audio (SIGKILL, SIGTERM, the soft
time limit, a transient failure, a stopped process, a permanent failure or a
cancel, then a user's retry) and checks what the next attempt, or the retry,
asked the provider: no chat call again, exactly the clips that were not yet paid for.

The fake answers the first ``n`` speech calls and holds the next ones
(:func:`hold_after`), so a test interrupts the run at a known point: ``n``
clips checkpointed, two calls in flight.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from podflow import lifecycle
from podflow.models import EpisodeProfile, Run
from podflow.monitoring.prometheus import PodflowCollector, render_metrics
from podflow.paths import checkpoint_dir
from podflow.states import RunStatus
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from tests.conftest import metric_samples
from tests.execution import wait_for
from tests.fake_provider import Call, FakeProvider, Reply
from tests.test_provider_runs import Stack, clip_seconds, open_stack

pytestmark = pytest.mark.slow

#: 3 segments: 10 turns from the fake (2 per segment, 2 intro, 2 outro)
EPISODE = EpisodeProfile(name="ck_news", num_segments=3, default_briefing="Be brief.")
#: 5 segments of 6 turns: 34 turns
LONG_EPISODE = EpisodeProfile(name="ck_long", num_segments=5, words_per_segment=420)
#: as worker_env: heartbeat every 0.2 s, lost after 1.5 s
POLICY = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0.5)
#: what every worker here runs with: provider voices, two turns at once, WAV (no encoding)
SETTINGS = {"PODFLOW_TTS_PARALLELISM": "2", "PODFLOW_AUDIO_FORMAT": "wav", "PODFLOW_PROVIDER_RETRIES": "0"}
#: a backoff no test waits for: a run released without a failure must not get it
SLOW_BACKOFF = {"PODFLOW_RETRY_BACKOFF": "30", "PODFLOW_RETRY_BACKOFF_MAX": "60"}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(seconds_per_char=0.01, vary_by_prompt=True) as fake:
        yield fake


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, provider: FakeProvider) -> Iterator[Stack]:
    with open_stack(redis_url, tmp_path, provider) as made:
        made.store.seed_profiles([EPISODE, LONG_EPISODE], now=utcnow())
        yield made


# -- helpers -----------------------------------------------------------------------------------------


HANG = Reply(hang_s=60)


def hold_after(fake: FakeProvider, answered: int, *held: Reply) -> None:
    """The next ``answered`` speech calls are answered; the ones after them get ``held``
    (by default two that hang until the client gives up)."""
    fake.script("speech", *[Reply()] * answered, *(held or (HANG, HANG)))


def clips_kept(stack: Stack, run: Run) -> list[Path]:
    return sorted(checkpoint_dir(stack.data_dir, run.run_id).glob("clip-*.wav"))


def interrupted_at(stack: Stack, run: Run, kept: int, held: int = 2) -> float:
    """Wait until ``kept`` clips are checkpointed and ``held`` calls hang; the time then."""
    wait_for(
        lambda: len(clips_kept(stack, run)) == kept and stack.fake.in_flight("speech") == held,
        timeout=30,
        what=f"{kept} clips kept and {held} calls held",
    )
    return time.time()


def redispatch(stack: Stack) -> None:
    """The scheduler's part: the sweep finds the run silent and sends it again."""

    def found() -> bool:
        return sweep(stack.store, now=utcnow(), policy=POLICY, dispatcher=stack.dispatcher).redispatched > 0

    wait_for(found, timeout=15, interval=0.2, what="the sweep to find the lost run")


def sent_after(stack: Stack, since: float, endpoint: str) -> list[Call]:
    """Requests to ``endpoint`` after ``since``. The fake logs a call once it has read its body,
    so a request closed before its body was sent (cancelled with its attempt) is logged late,
    bodiless: it is not a request of what came after."""
    return [c for c in stack.fake.calls(endpoint) if c.started > since and c.body]


def texts(calls: list[Call]) -> list[str]:
    return sorted(c.body["input"] for c in calls)


def episode_seconds(stack: Stack, done: Run) -> float:
    """What an uninterrupted run's episode lasts: the fake's clips and the pauses between them."""
    turns = stack.transcript(done)["turns"]
    pauses = [0.35 if (a["part"], a["segment"]) == (b["part"], b["segment"]) else 0.8 for a, b in pairwise(turns)]
    return sum(clip_seconds(stack.fake, t["text"]) for t in turns) + sum(pauses)


def assert_resumed(stack: Stack, done: Run, *, since: float, kept: int, attempt: int = 2) -> None:
    """The run ended SUCCESS at ``attempt`` having asked, after ``since``, no chat call and
    exactly the clips not kept before; its episode is as long as an uninterrupted one."""
    assert done.status is RunStatus.SUCCESS and done.attempt == attempt, done.error
    turns = [t["text"] for t in stack.transcript(done)["turns"]]
    assert not sent_after(stack, since, "chat")
    paid_before = [c for c in stack.fake.calls("speech") if c.started < since and c.status == 200]
    assert len(paid_before) == kept
    asked_after = sent_after(stack, since, "speech")
    assert texts(paid_before + asked_after) == sorted(turns)  # every clip paid for exactly once
    assert done.result is not None
    assert {name: (s.computed, s.reused) for name, s in done.result.stages.items()} == {
        "outline": (0, 1),
        "transcript": (0, 1),
        "audio": (len(turns) - kept, kept),
    }
    assert done.result.duration_s == pytest.approx(episode_seconds(stack, done), abs=0.001)
    assert done.progress is not None and f"reused outline, transcript and {kept} of {len(turns)} clips" in (
        done.progress.message
    )
    left = checkpoint_dir(stack.data_dir, done.run_id)  # SUCCESS: removed, just after the finish
    wait_for(lambda: not left.exists(), timeout=5, what="the checkpoints to go")


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    collector = PodflowCollector(store=stack.store, broker=None, mode="queue", store_kind="sqlite", clock=utcnow)
    return metric_samples(render_metrics(collector)[0].decode())


# -- the checks -----------------------------------------------------------------------------------------


def test_a_worker_killed_at_60_percent_of_the_audio_costs_only_the_missing_clips(stack: Stack) -> None:
    worker = stack.start(threads=1, **SETTINGS)
    hold_after(stack.fake, 6)
    run = stack.submit("Killed", episode_profile=EPISODE.name)
    killed = interrupted_at(stack, run, kept=6)
    worker.kill()
    stack.start(threads=1, **SETTINGS)
    redispatch(stack)
    done = stack.finished(run)
    assert_resumed(stack, done, since=killed, kept=6)


def test_a_graceful_stop_releases_the_run_and_another_worker_resumes_it_at_once(stack: Stack) -> None:
    first = stack.start(threads=1, **SETTINGS, **SLOW_BACKOFF)
    hold_after(stack.fake, 6)
    run = stack.submit("Stopped", episode_profile=EPISODE.name)
    interrupted_at(stack, run, kept=6)
    stack.start(threads=1, **SETTINGS, **SLOW_BACKOFF)  # idle, waiting
    stopped = time.time()
    assert first.stop() == 0
    done = stack.finished(run)
    assert_resumed(stack, done, since=stopped, kept=6)
    resumed = next(h for h in done.history if h.attempt == 2)
    assert resumed.reason == "retry" and resumed.at.timestamp() - stopped < 5  # not after a 30 s backoff
    assert "released: the worker stopped" in [h.reason for h in done.history if h.attempt == 1]


def test_the_soft_time_limit_mid_audio_releases_the_run_to_resume_from_its_checkpoints(stack: Stack) -> None:
    stack.start(threads=1, PODFLOW_SOFT_TIME_LIMIT="3", PODFLOW_MAX_ATTEMPTS="2", **SETTINGS, **SLOW_BACKOFF)
    hold_after(stack.fake, 6)
    run = stack.submit("Overtime", episode_profile=EPISODE.name)
    limited = interrupted_at(stack, run, kept=6)
    done = stack.finished(run, timeout=30)
    assert_resumed(stack, done, since=limited, kept=6)
    first = [h.reason for h in done.history if h.attempt == 1]
    assert first[-1] == "released for retry: soft_time_limit"
    resumed = next(h for h in done.history if h.attempt == 2)
    released = next(h for h in done.history if h.reason == "released for retry: soft_time_limit")
    assert (resumed.at - released.at).total_seconds() < 5


def test_a_truncated_clip_in_the_checkpoints_is_recomputed_not_reused(stack: Stack) -> None:
    stack.start(threads=1, PODFLOW_RETRY_BACKOFF="2", PODFLOW_RETRY_BACKOFF_MAX="3", **SETTINGS)
    hold_after(stack.fake, 6, Reply(status=503), HANG)  # a transient failure ends attempt 1
    run = stack.submit("Torn", episode_profile=EPISODE.name)
    wait_for(lambda: (r := stack.store.get_run(run.run_id)) and r.released, timeout=30, what="the release")
    released = time.time()
    kept = clips_kept(stack, run)
    assert len(kept) == 6
    torn = kept[0]
    data = torn.read_bytes()
    torn.unlink()  # a new file, as a torn write would leave: the attempt that made it has it linked
    torn.write_bytes(data[: len(data) // 2])
    done = stack.finished(run, timeout=30)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2, done.error
    assert done.result is not None and done.result.stages["audio"].reused == len(kept) - 1
    asked_again = sent_after(stack, released, "speech")
    assert len(asked_again) == len(stack.transcript(done)["turns"]) - len(kept) + 1
    paid_before = [c for c in stack.fake.calls("speech") if c.started < released and c.status == 200]
    assert len(set(texts(paid_before)) & set(texts(asked_again))) == 1  # only the torn clip was paid twice
    assert done.result.duration_s == pytest.approx(episode_seconds(stack, done), abs=0.001)


def test_a_zombie_attempt_writes_nothing_the_live_attempt_reads_and_deletes_nothing_it_needs(stack: Stack) -> None:
    zombie = stack.start(threads=1, **SETTINGS)
    hold_after(stack.fake, 4, Reply(hang_s=2), Reply(hang_s=2))  # answered while the zombie is stopped
    run = stack.submit("Zombie", episode_profile=EPISODE.name)
    interrupted_at(stack, run, kept=4)
    with zombie.frozen(stack.store.path):  # alive, silent: its lease runs out
        stack.fake.latency_s["speech"] = 1.5  # the live attempt takes its time
        stack.start(threads=1, **SETTINGS)
        redispatch(stack)
        wait_for(
            lambda: (r := stack.store.get_run(run.run_id)) and r.attempt == 2 and r.progress
            and r.progress.message.startswith("reused 4 of 10 clips"),
            timeout=15,
            what="attempt 2 to have read the checkpoints",
        )  # fmt: skip
        before = {path.name: path.stat().st_ino for path in clips_kept(stack, run)}
    # the zombie gets the answers it was waiting for, may store them, then learns it lost the run
    wait_for(lambda: "attempt 1 lost" in zombie.log(), timeout=10, what="the zombie to stop")
    assert stack.store.get_run(run.run_id).status is RunStatus.STARTED  # type: ignore[union-attr]
    after = {path.name: path.stat().st_ino for path in clips_kept(stack, run)}
    assert before.items() <= after.items()  # nothing the live attempt reused was replaced or removed
    done = stack.finished(run, timeout=30)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2, done.error
    assert done.result is not None and done.result.stages["audio"].reused == 4  # none of the zombie's
    assert done.result.duration_s == pytest.approx(episode_seconds(stack, done), abs=0.001)
    assert "attempt 1 succeeded" not in zombie.log()
    assert sorted(p.name for p in (stack.data_dir / "podcasts" / run.run_id).iterdir()) == [
        "episode.wav",
        "outline.json",
        "transcript.json",
    ]


def test_a_retry_of_a_failed_run_reuses_outline_transcript_and_the_29_clips_before_the_failure(
    stack: Stack,
) -> None:
    stack.start(threads=1, **{**SETTINGS, "PODFLOW_TTS_PARALLELISM": "1"})
    hold_after(stack.fake, 29, Reply(status=400, error="Input rejected."))  # turn 30, for good
    failed = stack.finished(stack.submit("Retried", episode_profile=LONG_EPISODE.name), timeout=60)
    assert failed.status is RunStatus.FAILURE and failed.error is not None and "400" in failed.error.message
    assert len(clips_kept(stack, failed)) == 29  # kept for a retry

    retried_at = time.time()
    retry = lifecycle.retry(stack.store, stack.dispatcher, failed.run_id, now=utcnow()).run
    done = stack.finished(retry, timeout=60)
    assert done.status is RunStatus.SUCCESS and done.attempt == 1 and done.retry_of == failed.run_id, done.error
    turns = stack.transcript(done)["turns"]
    assert len(turns) == 34
    assert not sent_after(stack, retried_at, "chat")
    assert texts(sent_after(stack, retried_at, "speech")) == sorted(t["text"] for t in turns[29:])
    assert done.result is not None and done.result.reused_from_retried == 31
    assert {name: (s.computed, s.reused) for name, s in done.result.stages.items()} == {
        "outline": (0, 1),
        "transcript": (0, 1),
        "audio": (5, 29),
    }
    assert done.progress is not None
    assert done.progress.message.endswith("; reused outline, transcript and 29 of 34 clips (31 from the retried run)")
    assert len(clips_kept(stack, failed)) == 29  # the original's stay until deleted or expired

    expected = {
        ("podflow_provider_calls_total", (("endpoint", "tts"), ("outcome", "ok"))): 34,
        ("podflow_provider_calls_total", (("endpoint", "tts"), ("outcome", "4xx"))): 1,
        ("podflow_provider_calls_total", (("endpoint", "llm"), ("outcome", "ok"))): 2,
        ("podflow_checkpoints_total", (("outcome", "reused"), ("stage", "audio"))): 29,
        ("podflow_checkpoints_total", (("outcome", "computed"), ("stage", "audio"))): 34,
        ("podflow_checkpoints_total", (("outcome", "reused"), ("stage", "transcript"))): 1,
    }

    def counted() -> dict[Any, float]:  # each worker process adds its counts every heartbeat interval
        samples = scrape(stack)
        return {key: samples.get(key, 0) for key in expected}

    with contextlib.suppress(AssertionError):  # the assert below says what differs
        wait_for(lambda: counted() == expected, timeout=5, what="the workers' counts in /metrics")
    assert counted() == expected


def test_a_retry_of_a_run_cancelled_mid_audio_reuses_outline_transcript_and_the_clips_it_kept(stack: Stack) -> None:
    stack.start(threads=1, **SETTINGS)
    hold_after(stack.fake, 6)
    run = stack.submit("Cancelled", episode_profile=EPISODE.name)
    interrupted_at(stack, run, kept=6)
    lifecycle.cancel(stack.store, run.run_id, now=utcnow())
    cancelled = stack.finished(run)
    assert cancelled.status is RunStatus.REVOKED
    wait_for(lambda: stack.fake.in_flight("speech") == 0, timeout=5, what="the held calls to be closed")
    assert len(clips_kept(stack, cancelled)) == 6  # kept for a retry

    retried_at = time.time()
    done = stack.finished(lifecycle.retry(stack.store, stack.dispatcher, run.run_id, now=utcnow()).run)
    assert done.status is RunStatus.SUCCESS and done.retry_of == run.run_id, done.error
    turns = [t["text"] for t in stack.transcript(done)["turns"]]
    assert not sent_after(stack, retried_at, "chat")
    paid_before = [c for c in stack.fake.calls("speech") if c.started < retried_at and c.status == 200]
    assert len(paid_before) == 6
    assert texts(paid_before + sent_after(stack, retried_at, "speech")) == sorted(turns)  # each paid for once
    assert done.result is not None and done.result.reused_from_retried == 8
    assert {name: (s.computed, s.reused) for name, s in done.result.stages.items()} == {
        "outline": (0, 1),
        "transcript": (0, 1),
        "audio": (len(turns) - 6, 6),
    }
    assert done.result.duration_s == pytest.approx(episode_seconds(stack, done), abs=0.001)
    assert len(clips_kept(stack, cancelled)) == 6  # the original's stay until deleted or expired


def test_a_changed_briefing_between_a_failed_run_and_its_retry_recomputes_every_stage(stack: Stack) -> None:
    stack.start(threads=1, **{**SETTINGS, "PODFLOW_TTS_PARALLELISM": "1"})
    hold_after(stack.fake, 3, Reply(status=400, error="Input rejected."))
    failed = stack.finished(stack.submit("Rebriefed", episode_profile=EPISODE.name), timeout=30)
    assert failed.status is RunStatus.FAILURE and len(clips_kept(stack, failed)) == 3
    stack.store.update_profile(EPISODE.model_copy(update={"default_briefing": "Only the numbers."}), now=utcnow())

    retried_at = time.time()
    done = stack.finished(lifecycle.retry(stack.store, stack.dispatcher, failed.run_id, now=utcnow()).run)
    assert done.status is RunStatus.SUCCESS, done.error
    turns = stack.transcript(done)["turns"]
    assert len(sent_after(stack, retried_at, "chat")) == 2
    assert texts(sent_after(stack, retried_at, "speech")) == sorted(t["text"] for t in turns)
    assert done.result is not None and done.result.reused_from_retried == 0
    assert all(s.reused == 0 for s in done.result.stages.values())
