"""The runner's life of one execution, on every store, with the clock passed in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dramatiq.middleware import TimeLimitExceeded

from podflow import paths
from podflow.errors import GenerationError, LeaseLost, SoftTimeLimitExceeded, TransientGenerationError, WorkerShutdown
from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult
from podflow.generation.keys import input_key
from podflow.heartbeat import HeartbeatMonitor
from podflow.models import Run, StageCalls
from podflow.runner import SHUTDOWN_REASON, Runner
from podflow.states import RunStatus
from podflow.store.base import Store
from tests import generators
from tests.conftest import T0, at
from tests.execution import request, seed


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_runner(store: Store, tmp_path: Path, generator: Any, clock: Clock | None = None) -> Runner:
    clock = clock or Clock()
    seed(store)
    monitor = HeartbeatMonitor(store=store, interval_s=60, clock=clock)
    return Runner(store=store, generator=generator, monitor=monitor, data_dir=tmp_path / "data", clock=clock)


def new_run(store: Store, name: str = "noop", now: datetime = T0) -> str:
    run, _ = store.create_run(Run.new(request(name), now=now))
    return run.run_id


def run_dir(runner: Runner, run_id: str) -> Path:
    return paths.run_dir(runner.data_dir, run_id)


def test_a_run_succeeds_and_its_files_are_promoted_with_relative_paths(store: Store, tmp_path: Path) -> None:
    def generate(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        assert ctx.work_dir.name == f".attempt-{ctx.attempt}" and ctx.work_dir.is_dir()
        assert req.briefing == "Be brief." and [s.title for s in req.sources] == ["notes"]
        ctx.progress("outline", 50, "half way")
        (ctx.work_dir / "scratch.tmp").write_text("not part of the result")
        return generators.noop(req, ctx)

    runner = make_runner(store, tmp_path, generate)
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    assert (outcome.kind, outcome.attempt, outcome.status) == ("succeeded", 1, RunStatus.SUCCESS)
    run = store.get_run(run_id)
    assert run.status is RunStatus.SUCCESS and run.attempt == 1
    assert run.progress is not None and run.progress.stage == "outline"
    assert run.result.transcript_path == f"podcasts/{run_id}/transcript.txt"
    assert run.result.outline_path == f"podcasts/{run_id}/outline.md" and run.result.duration_s == 1.5
    assert (runner.data_dir / run.result.transcript_path).read_text().startswith("noop")
    assert sorted(p.name for p in run_dir(runner, run_id).iterdir()) == ["outline.md", "transcript.txt"]


def test_a_claim_refused_is_skipped_with_one_log_line_saying_why(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    runner = make_runner(store, tmp_path, lambda req, ctx: calls.append(req.run_id))
    clock = runner._clock  # type: ignore[attr-defined]

    finished = new_run(store)
    store.finish(finished, store.claim(finished, now=T0), status=RunStatus.SUCCESS, now=T0)
    live = new_run(store)
    store.claim(live, now=T0)
    exhausted = new_run(store)
    for n in range(3):
        store.claim(exhausted, now=at(100 * n))
    clock.now = at(400)
    store.heartbeat(live, 1, now=at(390))

    reasons = {}
    with caplog.at_level(logging.INFO, logger="podflow.runner"):
        cases = [("absent", "run_" + "0" * 32), ("terminal", finished), ("live", live), ("exhausted", exhausted)]
        for name, run_id in cases:
            caplog.clear()
            outcome = runner.execute(run_id)
            assert outcome.kind == "skipped"
            assert len(caplog.records) == 1 and "skipped" in caplog.records[0].getMessage()
            reasons[name] = outcome.detail
    assert "does not exist" in reasons["absent"]
    assert "already SUCCESS" in reasons["terminal"]
    assert "held by live attempt 1" in reasons["live"]
    assert "attempts exhausted (3 of 3)" in reasons["exhausted"]
    assert calls == []


def test_a_transient_error_releases_the_run_and_re_raises_for_a_retry(store: Store, tmp_path: Path) -> None:
    runner = make_runner(store, tmp_path, generators.flaky)
    run_id = new_run(store)
    with pytest.raises(TransientGenerationError):
        runner.execute(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.STARTED and run.released and run.error.type == "TransientGenerationError"
    assert not (run_dir(runner, run_id) / ".attempt-1").exists()
    outcome = runner.execute(run_id)  # the retry: claimable at once
    assert outcome.kind == "succeeded" and store.get_run(run_id).attempt == 2


def test_a_transient_error_on_the_last_attempt_fails_the_run(store: Store, tmp_path: Path) -> None:
    def always(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        raise TransientGenerationError(f"still rate limited ({ctx.attempt})")

    runner = make_runner(store, tmp_path, always)
    run_id = new_run(store)
    for _ in range(2):
        with pytest.raises(TransientGenerationError):
            runner.execute(run_id)
    outcome = runner.execute(run_id)
    run = store.get_run(run_id)
    assert outcome.kind == "failed" and run.status is RunStatus.FAILURE and run.attempt == 3
    assert (run.error.type, run.error.message) == ("TransientGenerationError", "still rate limited (3)")


def test_a_permanent_error_fails_the_run_at_once_with_its_message(store: Store, tmp_path: Path) -> None:
    runner = make_runner(store, tmp_path, generators.broken)
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    run = store.get_run(run_id)
    assert outcome.kind == "failed" and run.status is RunStatus.FAILURE and run.attempt == 1
    assert (run.error.type, run.error.message) == ("ValueError", "boom: the generator has a bug")
    assert not run_dir(runner, run_id).exists()  # partial artifacts and the empty directory are gone
    assert runner.execute(run_id).kind == "skipped"  # never retried


def test_a_profile_deleted_after_acceptance_fails_the_run_permanently(store: Store, tmp_path: Path) -> None:
    calls: list[str] = []
    runner = make_runner(store, tmp_path, lambda req, ctx: calls.append("called"))
    run_id = new_run(store)
    store.delete_profile("speaker", "dual_host")
    runner.execute(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.FAILURE and run.error.type == "GenerationError"
    assert "dual_host" in run.error.message and calls == []


def test_a_soft_time_limit_fails_the_run_with_type_soft_time_limit(store: Store, tmp_path: Path) -> None:
    def too_long(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        (ctx.work_dir / "partial.wav").write_bytes(b"RIFF")
        raise SoftTimeLimitExceeded()

    runner = make_runner(store, tmp_path, too_long)
    runner.soft_time_limit_s = 1800
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    run = store.get_run(run_id)
    assert outcome.kind == "failed" and run.status is RunStatus.FAILURE
    assert (run.error.type, run.error.message) == ("soft_time_limit", "soft time limit of 1800 s exceeded")
    assert not run_dir(runner, run_id).exists()


def test_the_executors_own_time_limit_interrupt_is_injected_not_imported(store: Store, tmp_path: Path) -> None:
    def too_long(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        raise TimeLimitExceeded()  # what Dramatiq's TimeLimit middleware raises in a worker

    runner = make_runner(store, tmp_path, too_long)
    runner.time_limit_errors = (SoftTimeLimitExceeded, TimeLimitExceeded)
    run_id = new_run(store)
    assert runner.execute(run_id).kind == "failed"
    assert store.get_run(run_id).error.type == "soft_time_limit"


def test_a_worker_shutdown_releases_the_run_for_another_worker(store: Store, tmp_path: Path) -> None:
    def interrupted(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        raise WorkerShutdown("the worker is shutting down")

    runner = make_runner(store, tmp_path, interrupted)
    run_id = new_run(store)
    with pytest.raises(WorkerShutdown):
        runner.execute(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.STARTED and run.released
    assert run.error is None and run.history[-1].reason == SHUTDOWN_REASON  # a stop is no failure of the run


def _scripted(outcomes: list[str]) -> Any:
    """A generator whose executions end, in turn, as ``outcomes`` say: ``stop`` (the worker
    shuts down), ``transient`` (a retryable failure) or ``done``."""

    def generator(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        match outcomes.pop(0):
            case "stop":
                raise WorkerShutdown("the worker is shutting down")
            case "transient":
                raise TransientGenerationError("the provider is busy")
        return GenerationResult()

    return generator


def test_worker_shutdowns_use_up_no_attempts_and_failures_after_them_still_retry(store: Store, tmp_path: Path) -> None:
    # more stops than max_attempts (3), then a failure
    runner = make_runner(store, tmp_path, _scripted(["stop"] * 4 + ["transient", "done"]))
    run_id = new_run(store)
    for _ in range(4):
        with pytest.raises(WorkerShutdown):
            runner.execute(run_id)
        assert store.get_run(run_id).attempts_counted == 0
    with pytest.raises(TransientGenerationError):  # attempt 5, the first that counts: retried
        runner.execute(run_id)
    assert runner.execute(run_id).kind == "succeeded"
    run = store.get_run(run_id)
    assert (run.status, run.attempt, run.attempts_counted) == (RunStatus.SUCCESS, 6, 2)


def test_a_worker_shutdown_on_the_last_attempt_releases_the_run(store: Store, tmp_path: Path) -> None:
    # max_attempts is 3: the first stop comes on the last attempt
    runner = make_runner(store, tmp_path, _scripted(["transient", "transient", "stop", "stop", "done"]))
    run_id = new_run(store)
    for expected in (TransientGenerationError, TransientGenerationError, WorkerShutdown, WorkerShutdown):
        with pytest.raises(expected):
            runner.execute(run_id)
    run = store.get_run(run_id)
    assert (run.status, run.released, run.attempt, run.attempts_counted) == (RunStatus.STARTED, True, 4, 2)
    assert runner.execute(run_id).kind == "succeeded"
    assert store.get_run(run_id).attempts_counted == 3


def test_the_runs_own_message_is_deferred_while_a_live_looking_attempt_holds_it(store: Store, tmp_path: Path) -> None:
    clock = Clock(at(20))
    runner = make_runner(store, tmp_path, lambda req, ctx: GenerationResult(), clock)
    run_id = store.create_run(Run.new(request(), now=T0).model_copy(update={"current_message_id": "m-own"}))[0].run_id
    store.claim(run_id, now=at(0))  # an attempt whose worker may be dead: its heartbeat is at 0 s
    own = runner.execute(run_id, message_id="m-own")
    assert own.kind == "deferred" and own.retry_in_s == pytest.approx(40.1)  # stale at 60 s
    assert runner.execute(run_id, message_id="m-other").kind == "skipped"  # a duplicate
    assert runner.execute(run_id).kind == "skipped"  # thread mode: no messages
    clock.now = at(61)
    assert runner.execute(run_id, message_id="m-own").kind == "succeeded"  # stale now: reclaimed


def test_a_run_cancelled_while_running_writes_nothing_and_leaves_no_files(store: Store, tmp_path: Path) -> None:
    def cancelled_midway(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        (ctx.work_dir / "partial.wav").write_bytes(b"RIFF")
        store.cancel(req.run_id, now=at(1))
        runner.monitor.beat()  # the heartbeat learns of it
        ctx.check_cancelled()
        raise AssertionError("check_cancelled() should have raised")

    runner = make_runner(store, tmp_path, cancelled_midway)
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    run = store.get_run(run_id)
    assert (outcome.kind, outcome.status) == ("cancelled", RunStatus.REVOKED)
    assert run.status is RunStatus.REVOKED and run.result is None and run.history[-1].reason == "cancelled"
    assert not run_dir(runner, run_id).exists()


def test_an_attempt_that_lost_its_run_promotes_nothing(store: Store, tmp_path: Path) -> None:
    def overtaken(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        assert store.claim(req.run_id, now=at(100)) == 2  # stale: another worker took over
        return generators.noop(req, ctx)

    runner = make_runner(store, tmp_path, overtaken)
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    assert outcome.kind == "lost" and outcome.status is RunStatus.STARTED
    run = store.get_run(run_id)
    assert run.status is RunStatus.STARTED and run.attempt == 2 and run.result is None
    assert not run_dir(runner, run_id).exists()


class _ReclaimingStore:
    """A store whose ``finish_attempt`` loses the race to a re-claim (the fence moved on)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def finish_attempt(self, run_id: str, attempt: int, **kwargs: Any) -> bool:
        self._store.claim(run_id, now=at(100))
        return self._store.finish_attempt(run_id, attempt, **kwargs)


def test_files_promoted_before_a_refused_finish_are_removed(store: Store, tmp_path: Path) -> None:
    runner = make_runner(store, tmp_path, generators.noop)
    runner.store = _ReclaimingStore(store)  # type: ignore[assignment]
    run_id = new_run(store)
    outcome = runner.execute(run_id)
    assert outcome.kind == "lost"
    assert store.get_run(run_id).attempt == 2
    assert not (run_dir(runner, run_id) / "transcript.txt").exists()
    assert not (run_dir(runner, run_id) / "outline.md").exists()


def test_a_result_path_outside_the_work_dir_fails_the_run(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    runner = make_runner(store, tmp_path, lambda req, ctx: GenerationResult(transcript_path=outside))
    run_id = new_run(store)
    runner.execute(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.FAILURE and run.error.type == "GenerationError"
    assert "outside the work directory" in run.error.message and outside.exists()


def test_success_removes_what_crashed_earlier_attempts_left_behind(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    runner = make_runner(store, tmp_path, generators.noop, clock)
    run_id = new_run(store)
    assert store.claim(run_id, now=T0) == 1  # an attempt that crashed mid-run
    leftover = run_dir(runner, run_id) / ".attempt-1"
    leftover.mkdir(parents=True)
    (leftover / "partial.wav").write_bytes(b"RIFF")
    clock.now = at(100)  # its heartbeat is stale now
    assert runner.execute(run_id).kind == "succeeded"
    assert store.get_run(run_id).attempt == 2 and not leftover.exists()


def test_a_relative_data_dir_still_gives_paths_relative_to_it(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[Path] = []

    def generate(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        seen.append(ctx.work_dir)
        (ctx.work_dir / "episode.wav").write_bytes(b"RIFF")
        return GenerationResult(audio_path=ctx.work_dir / "episode.wav")

    runner = make_runner(store, tmp_path, generate)
    runner.data_dir = Path("var")
    run_id = new_run(store)
    assert runner.execute(run_id).kind == "succeeded"
    assert seen[0].is_absolute()
    assert store.get_run(run_id).result.audio_path == f"podcasts/{run_id}/episode.wav"
    assert (tmp_path / "var" / "podcasts" / run_id / "episode.wav").read_bytes() == b"RIFF"


# -- checkpoints across attempts and retries ----------------------------------------------------------


class Steps:
    """A generator of three checkpointed steps that fails at the third with ``fail[attempt]``
    (an exception raised, or a function called that raises)."""

    def __init__(self, **fail: BaseException | Callable[[GenerationRequest, GenerationContext], None]) -> None:
        self.fail = {int(attempt.removeprefix("attempt")): exc for attempt, exc in fail.items()}
        self.computed: list[tuple[int, int]] = []

    def __call__(self, req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
        for step in range(3):
            if step == 2 and ctx.attempt in self.fail:
                fail = self.fail[ctx.attempt]
                if isinstance(fail, BaseException):
                    raise fail
                fail(req, ctx)
            ctx.checkpoints.value(input_key("step", step), lambda step=step: self.compute(ctx, step), stage="steps")
        return generators.noop(req, ctx)

    def compute(self, ctx: GenerationContext, step: int) -> int:
        self.computed.append((ctx.attempt, step))
        return step


def test_a_transient_failure_keeps_the_checkpoints_and_the_next_attempt_reuses_them(
    store: Store, tmp_path: Path
) -> None:
    steps = Steps(attempt1=TransientGenerationError("the provider is down"))
    runner = make_runner(store, tmp_path, steps)
    run_id = new_run(store)
    with pytest.raises(TransientGenerationError):
        runner.execute(run_id)
    assert paths.checkpoint_dir(runner.data_dir, run_id).is_dir()
    assert runner.execute(run_id).kind == "succeeded"
    assert steps.computed == [(1, 0), (1, 1), (2, 2)]
    run = store.get_run(run_id)
    assert run.attempt == 2 and run.result.stages == {"steps": StageCalls(computed=1, reused=2)}
    assert not paths.checkpoint_dir(runner.data_dir, run_id).exists()  # SUCCESS: no longer needed
    runner.monitor.flush_counts()
    assert store.stats().checkpoints == {("steps", "computed"): 3, ("steps", "reused"): 2}


def test_a_soft_time_limit_after_new_checkpoints_releases_the_run_to_resume_them(store: Store, tmp_path: Path) -> None:
    steps = Steps(attempt1=SoftTimeLimitExceeded(), attempt2=SoftTimeLimitExceeded())
    runner = make_runner(store, tmp_path, steps)
    runner.soft_time_limit_s = 60
    run_id = new_run(store)
    with pytest.raises(SoftTimeLimitExceeded):  # released: the executor sends it again at once
        runner.execute(run_id)
    run = store.get_run(run_id)
    assert run.status is RunStatus.STARTED and run.released and run.error.type == "soft_time_limit"
    assert "the next attempt resumes from the checkpoints" in run.error.message
    # attempt 2 stores nothing new before its limit: no progress, so the run fails
    assert runner.execute(run_id).kind == "failed"
    run = store.get_run(run_id)
    assert (run.status, run.error.message) == (RunStatus.FAILURE, "soft time limit of 60 s exceeded")
    assert steps.computed == [(1, 0), (1, 1)]
    assert paths.checkpoint_dir(runner.data_dir, run_id).is_dir()  # kept for a retry


def test_a_retry_of_a_failed_run_reuses_its_checkpoints_and_says_how_many(store: Store, tmp_path: Path) -> None:
    steps = Steps(attempt1=GenerationError("turn 3 refused"))
    runner = make_runner(store, tmp_path, steps)
    failed = new_run(store)
    assert runner.execute(failed).kind == "failed"
    retry, _ = store.create_run(Run.new(request(), now=T0, retry_of=failed))
    steps.fail.clear()
    assert runner.execute(retry.run_id).kind == "succeeded"
    assert steps.computed == [(1, 0), (1, 1), (1, 2)]
    result = store.get_run(retry.run_id).result
    assert result.stages == {"steps": StageCalls(computed=1, reused=2)} and result.reused_from_retried == 2
    assert paths.checkpoint_dir(runner.data_dir, failed).is_dir()  # the original's stay until TTL or deletion


def test_a_retry_of_a_cancelled_run_reuses_the_checkpoints_it_completed(store: Store, tmp_path: Path) -> None:
    def cancelled_by_its_user(req: GenerationRequest, ctx: GenerationContext) -> None:
        store.cancel(req.run_id, now=at(1))
        runner.monitor.beat()  # the heartbeat learns of it
        ctx.check_cancelled()
        raise AssertionError("check_cancelled() should have raised")

    steps = Steps(attempt1=cancelled_by_its_user)
    runner = make_runner(store, tmp_path, steps)
    cancelled = new_run(store)
    outcome = runner.execute(cancelled)
    assert (outcome.kind, outcome.status) == ("cancelled", RunStatus.REVOKED)
    assert paths.checkpoint_dir(runner.data_dir, cancelled).is_dir()  # kept for a retry
    retry, _ = store.create_run(Run.new(request(), now=at(2), retry_of=cancelled))
    steps.fail.clear()
    assert runner.execute(retry.run_id).kind == "succeeded"
    assert steps.computed == [(1, 0), (1, 1), (1, 2)]
    result = store.get_run(retry.run_id).result
    assert result.stages == {"steps": StageCalls(computed=1, reused=2)} and result.reused_from_retried == 2
    assert store.get_run(cancelled).status is RunStatus.REVOKED  # the original is left as it is
    assert paths.checkpoint_dir(runner.data_dir, cancelled).is_dir()


def test_a_lost_lease_keeps_the_checkpoints_for_the_attempt_that_took_over(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    steps = Steps(attempt1=LeaseLost("attempt 1 lost the run"))
    runner = make_runner(store, tmp_path, steps, clock)
    run_id = new_run(store)
    assert runner.execute(run_id).kind == "lost"
    clock.now = at(100)  # its heartbeat went stale: the next claim takes over
    steps.fail.clear()
    assert runner.execute(run_id).kind == "succeeded"
    assert steps.computed == [(1, 0), (1, 1), (2, 2)]
