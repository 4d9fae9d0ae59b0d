"""``podflow dead list|requeue`` on a private redis-server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from podflow.cli import main
from podflow.exitcodes import RET_FAILED_RUN, RET_UNAVAILABLE
from podflow.models import Run
from podflow.settings import load_settings
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import QUEUE_NAME, build_broker, close_broker
from tests.execution import request, seed
from tests.servers import RABBITMQ_URL
from tests.worker.test_deadletter import dead_letter


def test_dead_messages_are_listed_with_their_runs_and_requeued(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env(PODFLOW_BROKER_URL=redis_url)
    store = seed(SqliteStore(data_dir / "podflow.sqlite3"))
    run = Run.new(request(), now=utcnow())
    store.create_run(run)
    store.close()
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="test")
    broker.declare_queue(QUEUE_NAME)
    dead = [dead_letter(broker, run.run_id), dead_letter(broker, "run_gone")]
    assert main(["dead", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("podcast: 2 dead-lettered message(s), the newest 2:")
    assert f"{run.run_id}  PENDING" in out and "run_gone" in out and " gone " in out and "ValueError: boom" in out
    assert main(["dead", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["run_id"]: m["run_status"] for m in listed["messages"]} == {"run_gone": None, run.run_id: "PENDING"}
    assert main(["dead", "requeue", dead[0].message_id]) == 0
    assert capsys.readouterr().out == f"requeued {dead[0].options['redis_message_id']} (run {run.run_id})\n"
    assert main(["dead", "requeue", dead[0].message_id]) == RET_FAILED_RUN  # once only
    assert main(["dead", "requeue", "--all"]) == RET_FAILED_RUN  # no terminal: --yes needed
    assert "pass --yes" in capsys.readouterr().err
    assert main(["dead", "requeue", "--all", "--yes"]) == 0
    assert broker.client.zcard(f"{broker.namespace}:{QUEUE_NAME}.XQ") == 0
    assert broker.client.llen(f"{broker.namespace}:{QUEUE_NAME}") == 2
    close_broker(broker)


def test_on_rabbitmq_the_dead_letters_command_says_what_to_use(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=RABBITMQ_URL)
    assert main(["dead", "list"]) == RET_UNAVAILABLE
    assert "management UI" in capsys.readouterr().err
