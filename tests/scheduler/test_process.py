"""The scheduler process: it sweeps at start and every interval, survives outages, and stops cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from podflow.exitcodes import RET_CONFIG
from podflow.models import Run
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy
from podflow.sweep.service import Sweeper
from podflow.timeutil import utcnow
from scheduler.process import JOB_ID, SweepScheduler
from tests.execution import ROOT, WorkerProcess, request, wait_for, worker_env
from tests.servers import free_port

SCHEDULER = [sys.executable, "-m", "scheduler"]


def overdue_run(store: SqliteStore) -> str:
    """A run STARTED two hours ago: past any test's PODFLOW_TIME_LIMIT (60 s)."""
    long_ago = utcnow() - timedelta(hours=2)
    run = Run.new(request(), now=long_ago)
    store.create_run(run)
    store.claim(run.run_id, now=long_ago)
    return run.run_id


def scheduler_process(tmp_path: Path, broker_url: str, **settings: str) -> WorkerProcess:
    env = worker_env(data_dir=tmp_path, broker_url=broker_url, **{"PODFLOW_SWEEP_INTERVAL": "0.3", **settings})
    return WorkerProcess(env, tmp_path / "scheduler.log", argv=SCHEDULER).start(ready=False)


def test_the_sweep_job_runs_at_intervals_with_jitter_coalesces_and_never_overlaps(tmp_path: Path) -> None:
    sweeper = Sweeper(open_store=lambda: SqliteStore(tmp_path / "s.sqlite3"), policy=SweepPolicy(60, 60),
                      dispatcher=None, holder="h")  # fmt: skip
    job = SweepScheduler(sweeper, interval_s=300).scheduler.get_job(JOB_ID)
    assert job.trigger.interval == timedelta(seconds=300) and job.trigger.jitter == 10
    assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time == 300
    sweeper.close()


def test_a_stop_signal_before_the_scheduler_runs_still_stops_it(tmp_path: Path) -> None:
    sweeper = Sweeper(open_store=lambda: SqliteStore(tmp_path / "s.sqlite3"), policy=SweepPolicy(60, 60),
                      dispatcher=None, holder="h")  # fmt: skip
    process = SweepScheduler(sweeper, interval_s=300)
    before = signal.getsignal(signal.SIGTERM)
    process.request_stop(signal.SIGTERM)
    assert process.run() == 0
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


@pytest.mark.slow
def test_the_scheduler_sweeps_at_start_and_every_interval_then_exits_0_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    overdue = overdue_run(store)
    scheduler = scheduler_process(tmp_path, redis_url)
    try:
        # the first sweep's line: it has run every rule (the run failing comes before its end)
        wait_for(lambda: "sweep: time_limit=1 " in scheduler.log(), what="the first sweep")
        assert store.get_run(overdue).error.type == "time_limit"
        # a start recorded while the broker was away: a later sweep sends it
        recorded = utcnow() - timedelta(minutes=1)
        unsent = Run.new(request(), now=recorded).model_copy(update={"outbox_at": recorded, "message_id": "msg-1"})
        store.create_run(unsent)
        wait_for(lambda: store.get_run(unsent.run_id).enqueued_at, what="a later sweep to enqueue it")
        assert redis.Redis.from_url(redis_url).llen("dramatiq:podcast") == 1
    finally:
        code = scheduler.stop()
    log = scheduler.log()
    assert code == 0, log
    assert "sweep: time_limit=1 worker_lost=0 redispatched=0 enqueued=0" in log
    assert "enqueued=1" in log and "SIGTERM received" in log and "scheduler stopped" in log
    assert "Traceback" not in log
    store.close()


@pytest.mark.slow
def test_sigterm_during_a_sweep_lets_it_finish_before_exiting_0(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "podflow.sqlite3"
    store = SqliteStore(path)
    overdue = overdue_run(store)
    store.close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the sweep's first write waits on this lock (busy timeout 10 s)
    scheduler = scheduler_process(tmp_path, redis_url, PODFLOW_SWEEP_INTERVAL="60", PODFLOW_LOG_LEVEL="DEBUG")
    try:
        wait_for(lambda: "sweep: starting" in scheduler.log(), what="the sweep to start")
        scheduler.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received" in scheduler.log(), what="the signal")
        time.sleep(0.3)
        assert scheduler.proc.poll() is None  # waiting for the sweep in progress
        blocker.execute("ROLLBACK")
        assert scheduler.proc.wait(10) == 0
    finally:
        blocker.close()
        scheduler.stop()
    assert "sweep: time_limit=1" in scheduler.log()
    assert SqliteStore(path).get_run(overdue).status is RunStatus.FAILURE


@pytest.mark.slow
def test_an_unreachable_store_is_logged_each_interval_and_the_scheduler_keeps_going(
    tmp_path: Path, redis_url: str
) -> None:
    mongo = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=100&connectTimeoutMS=100"
    scheduler = scheduler_process(tmp_path, redis_url, MONGODB_URI=mongo)
    try:
        wait_for(lambda: scheduler.log().count("sweep failed, trying again next interval") >= 2, what="two sweeps")
        assert scheduler.proc.poll() is None
    finally:
        code = scheduler.stop()
    assert code == 0 and "Traceback" not in scheduler.log()


@pytest.mark.slow
def test_an_invalid_setting_exits_78_with_one_line(tmp_path: Path, redis_url: str) -> None:
    env = worker_env(data_dir=tmp_path, broker_url=redis_url, PODFLOW_SWEEP_INTERVAL="-1")
    for argv in (SCHEDULER, [str(Path(sys.executable).parent / "podflow"), "scheduler"]):
        out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == RET_CONFIG, out.stderr
        assert out.stderr.splitlines() == [
            "podflow: invalid configuration: PODFLOW_SWEEP_INTERVAL='-1': input should be greater than 0"
        ]


def test_with_json_logs_every_line_of_the_scheduler_is_one_json_object(tmp_path: Path, redis_url: str) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    overdue_run(store)
    scheduler = scheduler_process(tmp_path, redis_url, PODFLOW_LOG_FORMAT="json")
    try:
        wait_for(lambda: "sweep: time_limit=1 " in scheduler.log(), what="the first sweep")
    finally:
        code = scheduler.stop()
    store.close()
    assert code == 0, scheduler.log()
    lines = [json.loads(line) for line in scheduler.log().splitlines()]  # APScheduler's lines too
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines), lines
    loggers = {line["logger"] for line in lines}
    assert {"scheduler", "podflow.sweep.service", "apscheduler.scheduler"} <= loggers, loggers


@pytest.mark.slow
def test_once_sweeps_once_and_exits_0(tmp_path: Path, redis_url: str) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    overdue = overdue_run(store)
    env = worker_env(data_dir=tmp_path, broker_url=redis_url)
    out = subprocess.run([*SCHEDULER, "--once"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "sweep: time_limit=1 worker_lost=0 redispatched=0 enqueued=0 requeued=0 expired=0"
        " checkpoints=0 deleted=0 send_errors=0\n"
    )
    assert store.get_run(overdue).status is RunStatus.FAILURE
    store.close()
