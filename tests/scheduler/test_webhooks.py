"""The scheduler delivers completion webhooks, and a SIGKILL never loses one.

Real processes: ``python -m scheduler`` (thread mode: no broker needed), a SQLite
store shared with the test, a receiver on 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from podflow.models import Run
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import WorkerProcess, request, wait_for, worker_env
from tests.webhooks.receiver import Receiver

SCHEDULER = [sys.executable, "-m", "scheduler"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def scheduler(tmp_path: Path, name: str) -> WorkerProcess:
    env = worker_env(
        data_dir=tmp_path,
        broker_url="redis://127.0.0.1:1/0",  # never used: thread mode sends nothing
        PODFLOW_MODE="thread",
        PODFLOW_SWEEP_INTERVAL="3600",
        PODFLOW_WEBHOOK_SECRET=SECRET,
        PODFLOW_WEBHOOK_TIMEOUT="1",
        PODFLOW_WEBHOOK_RETRY_BACKOFF="0.2",
    )
    return WorkerProcess(env, tmp_path / f"{name}.log", argv=SCHEDULER).start(ready=False)


def ended_run(store: SqliteStore, url: str) -> str:
    now = utcnow()
    run = Run.new(request(), now=now).model_copy(update={"callback_url": url})
    store.create_run(run)
    attempt = store.claim(run.run_id, now=now)
    assert attempt is not None and store.finish(run.run_id, attempt, status=RunStatus.SUCCESS, now=now)
    return run.run_id


def delivered(store: SqliteStore, run_id: str) -> Run | None:
    run = store.get_run(run_id)
    return run if run is not None and run.webhook is not None and run.webhook.outcome == "delivered" else None


@pytest.mark.slow
def test_a_run_ended_just_before_the_scheduler_is_killed_is_delivered_after_the_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    receiver = Receiver([]).start()
    first = scheduler(tmp_path, "first")
    try:
        wait_for(lambda: "scheduler started" in first.log(), timeout=20, what="the scheduler to start")
        run_id = ended_run(store, receiver.url)
        first.kill()  # right after the transition: before (or while) it delivers
        second = scheduler(tmp_path, "second")
        try:
            run = wait_for(lambda: delivered(store, run_id), timeout=30, what="the webhook after the restart")
        finally:
            second.stop()
    finally:
        first.kill()
        receiver.stop()
        store.close()
    assert receiver.received and run.webhook_due_at is None
    assert {r.headers["webhook-id"] for r in receiver.received} == {receiver.received[0].headers["webhook-id"]}
    Webhook(SECRET).verify(receiver.received[-1].body, receiver.received[-1].headers)


@pytest.mark.slow
def test_a_scheduler_killed_mid_post_leaves_the_webhook_to_be_sent_again_after_the_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    receiver = Receiver([("hang", 30.0)]).start()  # the first POST is never answered in time
    run_id = ended_run(store, receiver.url)  # before any scheduler runs
    first = scheduler(tmp_path, "first")
    try:
        wait_for(lambda: receiver.received, timeout=20, what="the first POST")
        first.kill()  # after the POST, before its outcome is recorded
        assert store.get_run(run_id).webhook is None
        second = scheduler(tmp_path, "second")
        try:
            # due again once the dead scheduler's lease runs out (4 x timeout + 5 s)
            run = wait_for(lambda: delivered(store, run_id), timeout=40, what="the webhook after the restart")
        finally:
            second.stop()
    finally:
        first.kill()
        receiver.stop()
        store.close()
    assert len(receiver.received) == 2 and run.webhook_attempts == 2  # at least once: sent again
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    assert receiver.received[0].body == receiver.received[1].body


def test_the_webhook_job_runs_every_second_beside_the_sweep_never_twice_at_once(tmp_path: Path) -> None:
    from datetime import timedelta

    from podflow.sweep import SweepPolicy
    from podflow.sweep.service import Sweeper
    from podflow.webhooks.delivery import Deliverer, DeliveryPolicy
    from scheduler.process import DELIVERY_JOB_ID, SweepScheduler

    sweeper = Sweeper(open_store=lambda: SqliteStore(tmp_path / "s.sqlite3"), policy=SweepPolicy(60, 60),
                      dispatcher=None, holder="h")  # fmt: skip
    deliverer = Deliverer(store=lambda: sweeper.store, policy=DeliveryPolicy())
    job = SweepScheduler(sweeper, interval_s=300, deliverer=deliverer).scheduler.get_job(DELIVERY_JOB_ID)
    assert job.trigger.interval == timedelta(seconds=1) and job.max_instances == 1 and job.coalesce
    assert job.executor == DELIVERY_JOB_ID  # not the sweep's thread: a long sweep holds no webhook back
    deliverer.close()
    sweeper.close()
