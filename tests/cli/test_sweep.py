"""``podflow sweep --once``: one sweep now, and a clear exit code when something is unreachable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from podflow.cli import main
from podflow.exitcodes import RET_UNAVAILABLE
from podflow.models import Run
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import request
from tests.servers import free_port


def unsent_run(data_dir: Path) -> str:
    """A PENDING run whose enqueue was never confirmed, a minute ago."""
    recorded = utcnow() - timedelta(minutes=1)
    run = Run.new(request(), now=recorded).model_copy(update={"outbox_at": recorded, "message_id": "msg-1"})
    store = SqliteStore(data_dir / "podflow.sqlite3")
    store.create_run(run)
    store.close()
    return run.run_id


def test_sweep_once_sends_what_the_outbox_holds_and_prints_the_counts(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env(PODFLOW_BROKER_URL=redis_url)
    unsent_run(data_dir)
    assert main(["sweep", "--once"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "sweep: time_limit=0 worker_lost=0 redispatched=0 enqueued=1 requeued=0 expired=0"
        " checkpoints=0 deleted=0 send_errors=0\n"
    )
    assert redis.Redis.from_url(redis_url).llen("dramatiq:podcast") == 1


def test_sweep_once_with_the_broker_down_exits_69_naming_it(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert main(["sweep", "--once"]) == RET_UNAVAILABLE
    err = capsys.readouterr().err
    assert err.startswith("podflow: sweep failed: broker unavailable: ") and "Traceback" not in err


def test_sweep_once_with_the_store_down_exits_69_naming_it(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mongo = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=100&connectTimeoutMS=100"
    podflow_env(PODFLOW_BROKER_URL=redis_url, MONGODB_URI=mongo)
    assert main(["sweep", "--once"]) == RET_UNAVAILABLE
    assert capsys.readouterr().err.startswith("podflow: sweep failed: store unavailable: ")


def test_sweep_once_in_thread_mode_needs_no_broker(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env(PODFLOW_MODE="thread", PODFLOW_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    unsent_run(data_dir)  # a queue-mode run: left for a queue-mode sweep
    assert main(["sweep", "--once"]) == 0
    assert "enqueued=0" in capsys.readouterr().out


def test_sweep_without_once_is_a_usage_error(podflow_env: Callable[..., Path]) -> None:
    podflow_env()
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep"])
    assert exit_info.value.code == 2
