"""``podflow worker`` and ``dramatiq podflow.actors``: the command line, and configuration errors."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from podflow.cli import main
from podflow.cli.worker import SHUTDOWN_TIMEOUT_S
from podflow.dispatch.queue import QueueDispatcher
from podflow.exitcodes import RET_CONFIG
from podflow.models import Run
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import ROOT, WorkerProcess, finished, request, seed, wait_for, worker_env

BIN = Path(sys.executable).parent


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_"))}
    env.update({"PODFLOW_DATA_DIR": str(tmp_path), "PODFLOW_GENERATOR": "tests.generators:noop", **settings})
    return env


def podflow_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "podflow"), "worker"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


def test_podflow_worker_runs_dramatiq_with_the_configured_processes_threads_and_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in clean_env(tmp_path, PODFLOW_CONCURRENCY="6", PODFLOW_WORKER_PROCESSES="3").items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(ROOT))
    assert main(["worker", "--print"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert argv == [
        sys.executable, "-m", "dramatiq", "podflow.actors",
        "--processes", "3", "--threads", "6", "--queues", "podcast.high", "podcast", "podcast.low",
        "--worker-shutdown-timeout", str(SHUTDOWN_TIMEOUT_S * 1000),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("PODFLOW_CONCURRENCY", "zero", "PODFLOW_CONCURRENCY"),
        ("PODFLOW_GENERATOR", "tests.nowhere:generate", "PODFLOW_GENERATOR"),
    ],
)
def test_podflow_worker_with_a_bad_setting_exits_78_with_one_line(
    tmp_path: Path, setting: str, value: str, named: str
) -> None:
    env = clean_env(tmp_path, **{setting: value})
    out = podflow_worker(env)
    assert out.returncode == RET_CONFIG
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("podflow: ") and named in lines[0], out.stderr


def test_podflow_worker_refuses_to_start_in_thread_mode(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PODFLOW_MODE="thread")
    out = podflow_worker(env)
    assert out.returncode == RET_CONFIG and "PODFLOW_MODE=thread" in out.stderr


@pytest.mark.slow
def test_dramatiq_podflow_actors_with_a_bad_setting_exits_78_with_one_podflow_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PODFLOW_MODE="fast")
    out = subprocess.run(
        [str(BIN / "dramatiq"), "podflow.actors", "--processes", "1", "--threads", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == RET_CONFIG, out.stderr
    ours = [line for line in out.stderr.splitlines() if line.startswith("podflow:")]
    assert ours == ["podflow: invalid configuration: PODFLOW_MODE='fast': input should be 'queue' or 'thread'"]
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_podflow_worker_stops_gracefully_when_its_whole_process_group_gets_sigterm(
    tmp_path: Path, worker_redis_url: str
) -> None:
    env = worker_env(data_dir=tmp_path, broker_url=worker_redis_url, PYTHONPATH=str(ROOT))
    worker = WorkerProcess(env, tmp_path / "worker.log", argv=[str(BIN / "podflow"), "worker"]).start()
    os.killpg(worker.proc.pid, signal.SIGTERM)  # what honcho (make run) does to each of its processes
    assert worker.proc.wait(30) == 0
    log = worker.log()
    assert "Worker has been shut down" in log and "Killing worker process" not in log, log


@pytest.mark.slow
@pytest.mark.parametrize("command", ["podflow worker", "dramatiq podflow.actors"])
def test_two_worker_processes_warn_once_about_an_old_setting(
    tmp_path: Path, worker_redis_url: str, command: str
) -> None:
    # `podflow worker` warns before it starts Dramatiq, and its processes do not again;
    # under bare Dramatiq only the first worker process warns
    env = worker_env(data_dir=tmp_path, broker_url=worker_redis_url, PYTHONPATH=str(ROOT), CELERY_CONCURRENCY="1",
                     PODFLOW_WORKER_PROCESSES="2")  # fmt: skip
    argv = [str(BIN / "podflow"), "worker"] if command == "podflow worker" else None
    worker = WorkerProcess(env, tmp_path / "worker.log", argv=argv)
    if argv is None:
        worker.argv[worker.argv.index("--processes") + 1] = "2"
    worker.start()
    try:
        wait_for(lambda: worker.log().count("ready for action") == 2, timeout=20, what="both worker processes")
    finally:
        assert worker.stop() == 0, worker.log()
    warnings = [line for line in worker.log().splitlines() if "CELERY_CONCURRENCY" in line]
    assert len(warnings) == 1, worker.log()


@pytest.mark.slow
def test_with_json_logs_the_worker_processes_lines_are_json_and_those_about_a_run_name_it(
    tmp_path: Path, worker_redis_url: str
) -> None:
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
    run = Run.new(request("noop"), now=utcnow())
    store.create_run(run)
    broker = build_broker(load_settings(env_file=None, broker_url=worker_redis_url), role="test")
    env = worker_env(data_dir=tmp_path, broker_url=worker_redis_url, PYTHONPATH=str(ROOT), PODFLOW_LOG_FORMAT="json")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        QueueDispatcher(broker=broker).send(run.run_id, None)
        assert finished(store, run.run_id).status is RunStatus.SUCCESS
    finally:
        code = worker.stop()
        close_broker(broker)
        store.close()
    assert code == 0, worker.log()
    # Dramatiq's main process, which only supervises, keeps its own text format (README "Logs")
    text = [line for line in worker.log().splitlines() if "[dramatiq.MainProcess]" in line]
    lines = [json.loads(line) for line in worker.log().splitlines() if line not in text]
    assert text and lines and all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    [done] = [line for line in lines if line["logger"] == "podflow.runner" and "succeeded" in line["message"]]
    assert (done["run_id"], done["attempt"]) == (run.run_id, 1) and done["message_id"]
