"""The sweep's rules with a fixed ``now``, on every store."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from podflow.models import ErrorInfo, Run, RunRef
from podflow.paths import checkpoint_dir
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.sweep import RESENT_REASON, SweepPolicy, locked_sweep, sweep
from tests.conftest import T0, at, open_test_store
from tests.execution import FakeDispatcher, request, seed

# the store fixture's heartbeat timeout is 60 s and max_attempts 3
POLICY = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400, outbox_grace_s=10)


def add(store: Store, now=T0, mode: str = "queue", **fields: object) -> str:
    run = Run.new(request(), now=now, mode=mode).model_copy(update=fields)  # type: ignore[arg-type]
    return store.create_run(run)[0].run_id


def started(store: Store, now=T0, mode: str = "queue") -> str:
    run_id = add(store, now, mode=mode)
    store.claim(run_id, now=now)
    return run_id


def test_a_run_past_the_time_limit_fails_with_time_limit(store: Store) -> None:
    old, young = started(store, T0), started(store, at(3000))
    store.heartbeat(old, 1, now=at(3600))
    report = sweep(store, now=at(3601), policy=POLICY, dispatcher=FakeDispatcher())
    assert report.time_limit == 1
    run = store.get_run(old)
    assert run.status is RunStatus.FAILURE and run.error.type == "time_limit"
    assert store.get_run(young).status is RunStatus.STARTED


def test_every_sweep_adds_its_report_to_the_store_counters(store: Store) -> None:
    started(store, T0)
    sweep(store, now=at(4000), policy=POLICY, dispatcher=FakeDispatcher())
    sweep(store, now=at(4001), policy=POLICY)  # nothing left to do: still a sweep
    stats = store.stats()
    assert stats.sweeps == 2 and stats.last_sweep_at == at(4001)
    assert stats.swept["time_limit"] == 1 and sum(stats.swept.values()) == 1


def test_the_time_limit_comes_before_redispatching_a_lost_run(store: Store) -> None:
    run_id = started(store, T0)  # both over the time limit and silent for an hour
    dispatcher = FakeDispatcher()
    report = sweep(store, now=at(4000), policy=POLICY, dispatcher=dispatcher)
    assert (report.time_limit, report.redispatched) == (1, 0) and dispatcher.sent == []
    assert store.get_run(run_id).error.type == "time_limit"


def reasons(store: Store, run_id: str) -> list[str]:
    return [h.reason for h in store.get_run(run_id).history]


def test_a_silent_run_is_released_once_and_left_to_the_message_its_dead_worker_held(store: Store) -> None:
    run_id = add(store, message_id="msg-first", current_message_id="msg-first")
    store.claim(run_id, now=T0)
    dispatcher = FakeDispatcher()
    dispatcher.held = {"msg-first"}  # unacked by the killed worker: Dramatiq's maintenance requeues it
    assert sweep(store, now=at(59), policy=POLICY, dispatcher=dispatcher).redispatched == 0
    report = sweep(store, now=at(61), policy=POLICY, dispatcher=dispatcher)
    assert (report.redispatched, report.requeued) == (1, 0) and dispatcher.sent == []
    assert dispatcher.requeues == 2  # the dead workers' messages were handed back first, at every sweep
    run = store.get_run(run_id)
    assert run.released and (run.message_id, run.current_message_id) == ("msg-first", "msg-first")
    for later in (200, 400, 3500):  # waiting in a backlog: no storm, no new history
        again = sweep(store, now=at(later), policy=POLICY, dispatcher=dispatcher)
        assert (again.redispatched, again.requeued) == (0, 0)
    assert dispatcher.sent == [] and reasons(store, run_id) == ["created", "claimed", "lost: heartbeat stale"]
    assert store.claim(run_id, now=at(3550)) == 2  # its message arrives


def test_a_silent_run_whose_message_is_gone_too_is_sent_again_at_once_under_a_new_id(store: Store) -> None:
    run_id = add(store, message_id="msg-first", current_message_id="msg-first")
    store.claim(run_id, now=T0)
    dispatcher = FakeDispatcher()  # holds nothing: a restarted Redis, a killed worker
    report = sweep(store, now=at(61), policy=POLICY, dispatcher=dispatcher)
    assert (report.redispatched, report.requeued) == (1, 1) and dispatcher.sent == [(run_id, "msg-1")]
    run = store.get_run(run_id)
    assert (run.message_id, run.current_message_id) == ("msg-first", "msg-1") and run.outbox_at is None
    assert reasons(store, run_id)[-2:] == ["lost: heartbeat stale", RESENT_REASON]
    assert sweep(store, now=at(500), policy=POLICY, dispatcher=dispatcher).total == 0  # msg-1 is held
    assert dispatcher.store_ids == [store.store_id]  # the message names the store
    assert store.claim(run_id, now=at(501)) == 2


def test_a_released_run_waiting_for_its_retry_is_left_to_its_backoff(store: Store) -> None:
    run_id = add(store, message_id="m", current_message_id="m")
    attempt = store.claim(run_id, now=T0)
    store.release(run_id, attempt, error=ErrorInfo(type="TransientGenerationError", message="503"), now=at(1))
    dispatcher = FakeDispatcher()
    dispatcher.held = {"m"}  # Dramatiq's retry, delayed for ten minutes
    for later in (100, 300, 599):
        assert sweep(store, now=at(later), policy=POLICY, dispatcher=dispatcher).total == 0
    assert dispatcher.sent == [] and len(store.get_run(run_id).history) == 3
    dispatcher.held = set()  # the retry was lost (a Redis restart): now it is sent again, once
    assert sweep(store, now=at(700), policy=POLICY, dispatcher=dispatcher).requeued == 1
    assert sweep(store, now=at(900), policy=POLICY, dispatcher=dispatcher).requeued == 0
    assert [run for run, _ in dispatcher.sent] == [run_id]


def test_lost_means_silent_past_the_stores_own_heartbeat_timeout(tmp_path: Path) -> None:
    store = seed(open_test_store("sqlite", tmp_path, heartbeat_timeout_s=30, max_attempts=1))
    run_id = started(store, T0)
    assert store.claim(run_id, now=at(29)) is None  # live for the claim...
    assert sweep(store, now=at(29), policy=POLICY).worker_lost == 0  # ...and for the sweep
    assert sweep(store, now=at(31), policy=POLICY).worker_lost == 1
    assert store.get_run(run_id).error.message == "no heartbeat for 30 s, no attempts left"


def test_a_silent_run_without_attempts_left_fails_with_worker_lost(store: Store) -> None:
    run_id = started(store, T0)
    store.claim(run_id, now=at(100))
    store.claim(run_id, now=at(200))
    dispatcher = FakeDispatcher()
    report = sweep(store, now=at(300), policy=POLICY, dispatcher=dispatcher)
    assert (report.worker_lost, report.redispatched) == (1, 0) and dispatcher.sent == []
    assert store.get_run(run_id).error.type == "worker_lost"


def test_an_unconfirmed_start_is_sent_after_a_grace_period(store: Store) -> None:
    run_id = add(store, outbox_at=T0, message_id="msg-9")
    dispatcher = FakeDispatcher()
    assert sweep(store, now=at(5), policy=POLICY, dispatcher=dispatcher).enqueued == 0  # maybe still sending
    report = sweep(store, now=at(11), policy=POLICY, dispatcher=dispatcher)
    assert report.enqueued == 1 and dispatcher.sent == [(run_id, "msg-9")]
    run = store.get_run(run_id)
    assert run.outbox_at is None and run.enqueued_at == at(11)


def test_an_unconfirmed_start_the_broker_already_holds_is_only_marked_enqueued(store: Store) -> None:
    run_id = add(store, outbox_at=T0, message_id="msg-9", current_message_id="msg-9")
    dispatcher = FakeDispatcher()
    dispatcher.held = {"msg-9"}  # sent, then the API died before marking it
    report = sweep(store, now=at(11), policy=POLICY, dispatcher=dispatcher)
    assert report.enqueued == 1 and dispatcher.sent == []  # no second copy of the same message
    assert store.get_run(run_id).enqueued_at == at(11)


def test_a_broker_still_down_leaves_the_outbox_for_the_next_sweep(store: Store) -> None:
    ids = [add(store, outbox_at=T0, message_id=f"m{i}") for i in range(3)]
    dispatcher = FakeDispatcher()
    dispatcher.down = True
    report = sweep(store, now=at(20), policy=POLICY, dispatcher=dispatcher)
    assert (report.enqueued, report.send_errors) == (0, 1)  # stops at the first failure
    assert {r.run_id for r in store.list_outbox(requested_before=at(20))} == set(ids)
    assert any(store.get_run(i).enqueue_error for i in ids)
    dispatcher.down = False
    assert sweep(store, now=at(30), policy=POLICY, dispatcher=dispatcher).enqueued == 3


def test_a_pending_run_enqueued_too_long_ago_expires(store: Store) -> None:
    old = add(store, enqueued_at=T0)
    draft = add(store)
    report = sweep(store, now=at(86401), policy=POLICY)
    assert report.expired == 1 and store.get_run(old).error.type == "expired"
    assert store.get_run(draft).status is RunStatus.PENDING


def test_lost_messages_are_found_per_run_whatever_else_is_queued(store: Store) -> None:
    held = [add(store, enqueued_at=T0, message_id=f"h{i}", current_message_id=f"h{i}") for i in range(3)]
    lost = [add(store, enqueued_at=T0, message_id=f"l{i}", current_message_id=f"l{i}") for i in range(2)]
    young = add(store, enqueued_at=at(100), message_id="y", current_message_id="y")  # within the grace
    dispatcher = FakeDispatcher()
    dispatcher.held = {"h0", "h1", "h2"}  # a backlog, and two messages Redis lost
    report = sweep(store, now=at(120), policy=POLICY, dispatcher=dispatcher)
    assert report.requeued == 2 and sorted(run for run, _ in dispatcher.sent) == sorted(lost)
    assert {message for _, message in dispatcher.sent}.isdisjoint({"l0", "l1"})  # new message ids
    for run_id in lost:
        run = store.get_run(run_id)
        assert run.status is RunStatus.PENDING and run.enqueued_at == at(120)  # expiry counts from the new one
        assert reasons(store, run_id) == ["created", RESENT_REASON]
    assert all(reasons(store, run_id) == ["created"] for run_id in [*held, young])
    assert sweep(store, now=at(200), policy=POLICY, dispatcher=dispatcher).requeued == 1  # young, once past it


def test_the_sweeps_sends_keep_each_runs_band_and_scheduled_start(store: Store) -> None:
    start = at(7200)
    outboxed = add(store, outbox_at=T0, message_id="o", priority="low", start_at=start)
    lost = add(store, enqueued_at=T0, message_id="l", current_message_id="l", priority="high", start_at=start)
    dispatcher = FakeDispatcher()
    report = sweep(store, now=at(120), policy=POLICY, dispatcher=dispatcher)
    assert (report.enqueued, report.requeued) == (1, 1)
    sent = dict(zip((run for run, _ in dispatcher.sent), dispatcher.timings, strict=True))
    assert sent == {outboxed: ("low", start), lost: ("high", start)}  # still delayed until its start


def test_a_run_held_until_its_schedule_is_sent_at_the_horizon_before_its_start(store: Store) -> None:
    policy = replace(POLICY, schedule_horizon_s=3600)
    start = at(7200)
    held = add(store, outbox_at=at(3600), message_id="h", current_message_id="h", start_at=start)  # as submit holds it
    dispatcher = FakeDispatcher()
    assert sweep(store, now=at(3000), policy=policy, dispatcher=dispatcher).enqueued == 0 and dispatcher.sent == []
    report = sweep(store, now=at(3611), policy=policy, dispatcher=dispatcher)  # the horizon, plus the grace
    assert report.enqueued == 1 and dispatcher.sent == [(held, "h")] and dispatcher.timings == [("normal", start)]
    assert store.get_run(held).enqueued_at == at(3611)


def test_a_lost_message_of_a_run_scheduled_beyond_the_horizon_goes_back_to_the_outbox(store: Store) -> None:
    policy = replace(POLICY, schedule_horizon_s=3600)
    start = at(30 * 86400)  # sent before the upgrade that brought the horizon, or a horizon since shortened
    lost = add(store, enqueued_at=T0, message_id="l", current_message_id="l", start_at=start)
    dispatcher = FakeDispatcher()
    report = sweep(store, now=at(120), policy=policy, dispatcher=dispatcher)
    assert report.requeued == 1 and dispatcher.sent == []  # recorded under a new id, not sent
    run = store.get_run(lost)
    assert (run.outbox_at, run.enqueued_at) == (start - timedelta(seconds=3600), None)
    assert run.current_message_id != "l" and run.history[-1].reason == RESENT_REASON
    assert sweep(store, now=at(240), policy=policy, dispatcher=dispatcher).requeued == 0  # held: not lost again


def test_a_lost_run_is_never_failed_as_expired(store: Store) -> None:
    lost = add(store, enqueued_at=T0, message_id="gone", current_message_id="gone")
    stuck = add(store, enqueued_at=T0, message_id="held", current_message_id="held")
    dispatcher = FakeDispatcher()
    dispatcher.held = {"held"}
    report = sweep(store, now=at(86401), policy=POLICY, dispatcher=dispatcher)
    assert (report.requeued, report.expired) == (1, 1)
    assert store.get_run(lost).status is RunStatus.PENDING
    assert store.get_run(stuck).error.type == "expired"  # held a day and never started: a real expiry


def test_a_broker_that_cannot_be_asked_re_sends_nothing_and_expires_nothing(store: Store) -> None:
    run_id = add(store, enqueued_at=T0, current_message_id="m")
    dispatcher = FakeDispatcher()
    dispatcher.down = True
    report = sweep(store, now=at(86401), policy=POLICY, dispatcher=dispatcher)
    assert (report.requeued, report.expired) == (0, 0) and dispatcher.sent == []
    assert store.get_run(run_id).status is RunStatus.PENDING  # lost or stuck: the next sweep can tell


def test_where_the_broker_cannot_tell_nothing_is_re_sent_and_pending_runs_expire(store: Store) -> None:
    pending = add(store, enqueued_at=T0, current_message_id="m")
    silent = started(store, at(86000))
    dispatcher = FakeDispatcher()
    dispatcher.held = None  # RabbitMQ: it redelivers a dead consumer's messages itself
    report = sweep(store, now=at(86401), policy=POLICY, dispatcher=dispatcher)
    assert (report.redispatched, report.requeued, report.expired) == (1, 0, 1) and dispatcher.sent == []
    assert store.get_run(silent).released and store.get_run(pending).error.type == "expired"


def test_without_a_dispatcher_only_the_failing_rules_run(store: Store) -> None:
    lost = started(store, at(1000))
    outbox = add(store, outbox_at=T0)
    report = sweep(store, now=at(2000), policy=POLICY)
    assert (report.redispatched, report.enqueued) == (0, 0)
    assert not store.get_run(lost).released and store.get_run(outbox).outbox_at == T0


def test_dispatch_rules_only_send_runs_of_the_dispatchers_mode(store: Store) -> None:
    queued = add(store, outbox_at=T0, message_id="mq")
    threaded = add(store, mode="thread", outbox_at=T0)
    dispatcher = FakeDispatcher(mode="thread", durable=False)
    report = sweep(store, now=at(20), policy=POLICY, dispatcher=dispatcher)
    assert report.enqueued == 1 and dispatcher.sent == [(threaded, None)]
    assert store.get_run(queued).outbox_at == T0  # left for the queue-mode sweep
    assert store.get_run(threaded).outbox_at == T0  # not durable: stays until claimed


def test_each_rule_works_through_every_batch(store: Store) -> None:
    small = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400, batch=2)
    seed(store)
    for i in range(5):
        started(store, T0)
        add(store, outbox_at=T0, message_id=None)
        add(store, enqueued_at=T0, current_message_id=f"lost-{i}")
    dispatcher = FakeDispatcher()
    report = sweep(store, now=at(100), policy=small, dispatcher=dispatcher)
    # the silent runs' messages are gone too: each is released and re-sent
    assert (report.redispatched, report.enqueued, report.requeued) == (5, 5, 10) and len(dispatcher.sent) == 15


def test_a_second_sweep_finds_nothing_to_do(store: Store) -> None:
    started(store, T0)
    add(store, outbox_at=T0)
    add(store, enqueued_at=T0, current_message_id="held")
    dispatcher = FakeDispatcher()
    dispatcher.held = {"held"}
    first = sweep(store, now=at(86401), policy=POLICY, dispatcher=dispatcher)
    assert first.total == 3
    assert sweep(store, now=at(86401), policy=POLICY, dispatcher=dispatcher).total == 0


def test_the_lease_keeps_a_second_scheduler_out(store: Store) -> None:
    run_id = started(store, T0)
    assert store.acquire_lease("sweep", holder="scheduler-a", now=at(99), ttl_s=60)
    dispatcher = FakeDispatcher()
    assert locked_sweep(store, now=at(100), policy=POLICY, holder="scheduler-b", dispatcher=dispatcher) is None
    assert not store.get_run(run_id).released
    store.release_lease("sweep", holder="scheduler-a")
    report = locked_sweep(store, now=at(100), policy=POLICY, holder="scheduler-b", dispatcher=dispatcher)
    assert report is not None and report.redispatched == 1
    assert store.acquire_lease("sweep", holder="scheduler-a", now=at(101), ttl_s=60)  # released after


def test_two_sweeps_at_once_dispatch_each_run_once(store: Store) -> None:
    ids = {started(store, T0) for _ in range(6)} | {add(store, outbox_at=T0) for _ in range(6)}
    dispatchers = [FakeDispatcher(), FakeDispatcher()]
    barrier = threading.Barrier(2)

    def go(dispatcher: FakeDispatcher) -> None:
        barrier.wait()
        sweep(store, now=at(100), policy=POLICY, dispatcher=dispatcher)

    dispatchers[1].held = dispatchers[0].held  # one broker
    threads = [threading.Thread(target=go, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lost_sent = [r for d in dispatchers for r, _ in d.sent if store.get_run(r).status is RunStatus.STARTED]
    assert sorted(lost_sent) == sorted(set(lost_sent)) and len(lost_sent) == 6  # released and re-sent once each
    outbox_sent = {r for d in dispatchers for r, _ in d.sent} - set(lost_sent)
    assert outbox_sent | set(lost_sent) == ids  # an outbox run may go twice: claim fences the copy


class _FileDispatcher:
    """Records each send as a line in a file shared by processes."""

    mode = "queue"
    durable = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._ids = 0

    def new_message_id(self) -> str:
        self._ids += 1
        return f"msg-{os.getpid()}-{self._ids}"

    def missing(self, refs: Sequence[RunRef]) -> set[str]:
        """A message id means a message still held; none, one never sent."""
        return {ref.run_id for ref in refs if ref.current_message_id is None}

    def requeue_orphans(self) -> None:
        return None

    def send(self, run_id: str, message_id: str | None, **options: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{run_id}\n")


def _sweep_in_another_process(db: str, sent: str, start: Any) -> None:
    from podflow.store.sqlite import SqliteStore

    store = SqliteStore(db, heartbeat_timeout_s=60)
    start.wait()  # both processes sweep at the same moment
    sweep(store, now=at(100_000), policy=POLICY, dispatcher=_FileDispatcher(sent))
    store.close()


@pytest.mark.slow
def test_two_sweeping_processes_at_once_leave_every_run_changed_once(tmp_path: Path) -> None:
    from podflow.store.sqlite import SqliteStore

    db = str(tmp_path / "podflow.sqlite3")
    store = SqliteStore(db, heartbeat_timeout_s=60)
    over_time = {started(store, at(0)) for _ in range(20)}  # started at T0: past the 3600 s limit
    lost = set()
    for _ in range(20):  # silent since 99 000 s, so lost but within the time limit
        run_id = add(store, at(99_000))
        store.claim(run_id, now=at(99_000))
        lost.add(run_id)
    unsent = {add(store, at(99_000), outbox_at=at(99_000), message_id="m") for _ in range(20)}
    stale = {add(store, at(0), enqueued_at=at(0), current_message_id="m") for _ in range(20)}  # expires

    context = multiprocessing.get_context("spawn")
    start = context.Event()
    sent = str(tmp_path / "sent.txt")
    procs = [context.Process(target=_sweep_in_another_process, args=(db, sent, start)) for _ in range(2)]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # let both import and open the store
    start.set()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    def failures(run_id: str) -> int:
        return sum(h.status is RunStatus.FAILURE for h in store.get_run(run_id).history)

    assert all(failures(r) == 1 and store.get_run(r).error.type == "time_limit" for r in over_time)
    assert all(failures(r) == 1 and store.get_run(r).error.type == "expired" for r in stale)
    sends = Path(sent).read_text().split()
    assert sorted(r for r in sends if r in lost) == sorted(lost)  # each lost run released and re-sent once
    assert all(store.get_run(r).released for r in lost)
    assert set(sends) - lost == unsent  # outbox runs may go twice: claim fences the copy
    assert all(store.get_run(r).enqueued_at is not None for r in unsent)
    store.close()


def test_checkpoints_are_removed_once_no_retry_can_use_them(store: Store, tmp_path: Path) -> None:
    policy = replace(POLICY, data_dir=tmp_path, checkpoint_ttl_s=600)
    running = started(store, at(3000))
    failed_long_ago, failed_lately = started(store, at(3000)), started(store, at(3000))
    store.finish(failed_long_ago, 1, status=RunStatus.FAILURE, now=at(3001))
    store.finish(failed_lately, 1, status=RunStatus.FAILURE, now=at(3500))
    succeeded = started(store, at(3000))
    store.finish(succeeded, 1, status=RunStatus.SUCCESS, now=at(3002))  # a crash between finish and clean-up
    revoked = add(store, at(3000))
    store.cancel(revoked, now=at(3003))
    deleted = "run_" + "d" * 32
    for run_id in (running, failed_long_ago, failed_lately, succeeded, revoked, deleted):
        (checkpoint_dir(tmp_path, run_id) / "clip-1.wav").parent.mkdir(parents=True)
        (checkpoint_dir(tmp_path, run_id) / "clip-1.wav").write_bytes(b"RIFF")

    report = sweep(store, now=at(3700), policy=policy)
    assert report.checkpoints == 4
    left = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert left == sorted([running, failed_lately])  # running, and within PODFLOW_CHECKPOINT_TTL
    assert store.stats().swept["checkpoints"] == 4
    assert sweep(store, now=at(4200), policy=policy).checkpoints == 1  # the TTL passed for the other one too
    assert sweep(store, now=at(4200), policy=POLICY).checkpoints == 0  # no data dir: the rule does nothing


def test_retention_deletes_ended_runs_past_the_cutoff_with_their_files_and_leaves_the_counters(
    store: Store, tmp_path: Path
) -> None:
    from podflow.paths import run_dir

    policy = replace(POLICY, data_dir=tmp_path, retention_s=86400)
    old_success, old_failure = started(store, at(0)), started(store, at(0))
    store.finish(old_success, 1, status=RunStatus.SUCCESS, now=at(10))
    store.finish(old_failure, 1, status=RunStatus.FAILURE, now=at(20))
    old_revoked = add(store, at(0))
    store.cancel(old_revoked, now=at(30))
    recent = started(store, at(0))
    store.finish(recent, 1, status=RunStatus.SUCCESS, now=at(86400))
    waiting = add(store, at(0))  # PENDING for days: the expiry rule's, never retention's
    for run_id in (old_success, old_failure, old_revoked, recent):
        (run_dir(tmp_path, run_id) / "episode.mp3").parent.mkdir(parents=True)
        (run_dir(tmp_path, run_id) / "episode.mp3").write_bytes(b"ID3")
        (checkpoint_dir(tmp_path, run_id) / "clip-1.wav").parent.mkdir(parents=True)
        (checkpoint_dir(tmp_path, run_id) / "clip-1.wav").write_bytes(b"RIFF")
    counted = store.stats()

    report = sweep(store, now=at(86400 + 25), policy=policy)  # past the cut-off: the SUCCESS and FAILURE runs
    assert report.deleted == 2
    assert store.get_run(old_success) is None and store.get_run(old_failure) is None
    assert {r.run_id for r in store.list_runs(limit=10).runs} == {old_revoked, recent, waiting}
    for run_id in (old_success, old_failure):
        assert not run_dir(tmp_path, run_id).exists() and not checkpoint_dir(tmp_path, run_id).exists()
    assert (run_dir(tmp_path, old_revoked) / "episode.mp3").exists()
    stats = store.stats()
    assert (stats.created, stats.finished, stats.durations) == (counted.created, counted.finished, counted.durations)
    assert stats.swept["deleted"] == 2
    assert sweep(store, now=at(86400 + 31), policy=policy).deleted == 1  # the REVOKED one's turn
    assert not run_dir(tmp_path, old_revoked).exists()
    assert sweep(store, now=at(10**6), policy=replace(policy, retention_s=0)).deleted == 0  # 0: kept forever
    assert sweep(store, now=at(10**6), policy=replace(policy, data_dir=None)).deleted == 0  # files unknown: kept
    assert store.get_run(recent) is not None


def test_retention_deletes_in_batches_and_at_most_its_cap_per_sweep(store: Store, tmp_path: Path) -> None:
    policy = replace(POLICY, data_dir=tmp_path, retention_s=60, batch=2, retention_cap=5)
    for i in range(7):
        store.cancel(add(store, at(i)), now=at(i))
    assert sweep(store, now=at(3600), policy=policy).deleted == 5  # three batches, the last cut to the cap
    assert sweep(store, now=at(3600), policy=policy).deleted == 2
    assert sweep(store, now=at(3600), policy=policy).deleted == 0
    assert store.stats().swept["deleted"] == 7 and store.stats().finished[RunStatus.REVOKED] == 7
