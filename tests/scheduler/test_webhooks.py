"""The scheduler delivers completion webhooks, and a SIGKILL never loses one.

Real processes: ``python -m scheduler`` (thread mode: no broker needed), a SQLite
store shared with the test, a receiver on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from podflow.models import Run
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import WorkerProcess, request, wait_for, worker_env
from tests.webhooks.receiver import Answer, Receiver

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


KillWhen = Callable[[WorkerProcess, Receiver], object]


def delivered_after_a_restart(
    tmp_path: Path, script: list[Answer], *, before_start: bool, until_killed: KillWhen
) -> tuple[Run, Receiver]:
    """A run ended (``before_start``: before the first scheduler starts, else once it runs),
    the first scheduler SIGKILLed once ``until_killed`` holds, a second one started: the
    run once its webhook is delivered, and the receiver."""
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    receiver = Receiver(script).start()
    first = second = None
    try:
        run_id = ended_run(store, receiver.url) if before_start else None
        first = scheduler(tmp_path, "first")
        wait_for(lambda: until_killed(first, receiver), timeout=20, what="the moment to kill the scheduler")
        run_id = run_id or ended_run(store, receiver.url)
        first.kill()
        second = scheduler(tmp_path, "second")
        # due again at once, or once the dead scheduler's lease runs out (4 x timeout + 5 s)
        run = wait_for(lambda: delivered(store, run_id), timeout=40, what="the webhook after the restart")
        return run, receiver
    finally:
        for process in (first, second):
            if process is not None:
                process.stop()
        receiver.stop()
        store.close()


@pytest.mark.slow
def test_a_run_ended_just_before_the_scheduler_is_killed_is_delivered_after_the_restart(tmp_path: Path) -> None:
    run, receiver = delivered_after_a_restart(
        tmp_path, [], before_start=False, until_killed=lambda first, _: "scheduler started" in first.log()
    )  # the run ends right before the kill: before (or while) it delivers
    assert receiver.received and run.webhook_due_at is None
    assert {r.headers["webhook-id"] for r in receiver.received} == {receiver.received[0].headers["webhook-id"]}
    Webhook(SECRET).verify(receiver.received[-1].body, receiver.received[-1].headers)


@pytest.mark.slow
def test_a_scheduler_killed_mid_post_leaves_the_webhook_to_be_sent_again_after_the_restart(tmp_path: Path) -> None:
    # the first POST is never answered in time: the kill comes after it, before its outcome is recorded
    run, receiver = delivered_after_a_restart(
        tmp_path, [("hang", 30.0)], before_start=True, until_killed=lambda _, receiver: receiver.received
    )
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


def test_a_bad_webhook_secret_stops_the_scheduler_with_exit_78_naming_it(tmp_path: Path) -> None:
    import subprocess

    from podflow.exitcodes import RET_CONFIG
    from tests.execution import ROOT

    env = worker_env(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0", PODFLOW_WEBHOOK_SECRET="hunter2")
    done = subprocess.run(SCHEDULER, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == RET_CONFIG and "PODFLOW_WEBHOOK_SECRET" in done.stderr
    assert "hunter2" not in done.stderr
