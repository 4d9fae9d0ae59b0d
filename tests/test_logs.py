"""Logs a machine can read: the JSON format, and the run on every line about a run."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from podflow.logs import RunFields, install, run_context, run_fields, set_attempt
from tests import generators
from tests.api.conftest import InProcessWorker, serve, settings_for
from tests.execution import wait_for


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """A JSON handler on the root logger, as ``PODFLOW_LOG_FORMAT=json`` installs it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install([handler], "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_and_lines_about_a_run_name_it(json_lines: io.StringIO) -> None:
    log = logging.getLogger("podflow.test")
    log.info("nothing to do with a run")
    with run_context("run_1", message_id="msg-1"):
        log.info("claiming")
        set_attempt(2)
        log.warning("attempt %d: 科技新闻", 2)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.info("sweep: %s", "x", extra=run_fields("run_2", attempt=1))
    lines = parsed(json_lines)
    assert [line["message"] for line in lines] == ["nothing to do with a run", "claiming", "attempt 2: 科技新闻",
                                                    "failed", "sweep: x"]  # fmt: skip
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert "run_id" not in lines[0]
    assert [(line["run_id"], line["attempt"], line["message_id"]) for line in lines[1:]] == [
        ("run_1", None, "msg-1"),
        ("run_1", 2, "msg-1"),
        ("run_1", 2, "msg-1"),
        ("run_2", 1, None),
    ]
    assert "ValueError: boom" in str(lines[3]["exc_info"]) and lines[3]["level"] == "ERROR"


def test_a_run_context_puts_back_what_was_bound_before() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with run_context("outer", message_id="m1"), run_context("inner"):
        RunFields().filter(record)
    assert (record.run_id, record.message_id) == ("inner", None)  # type: ignore[attr-defined]
    after = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    RunFields().filter(after)
    assert not hasattr(after, "run_id")


def test_every_worker_line_about_a_run_names_its_run_attempt_and_message(
    json_lines: io.StringIO, tmp_path: Path, redis_url: str
) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url, generator="tests.generators:by_name")
    from api.app import create_app

    with serve(create_app(settings)) as api, InProcessWorker(settings, api.store, generators.by_name):
        submitted = api.submit(episode_name="flaky")  # fails once (a retry), then succeeds
        wait_for(lambda: api.store.get_run(submitted["run_id"]).status == "SUCCESS", timeout=20)
    about = [line for line in parsed(json_lines) if submitted["run_id"] in str(line["message"])]
    assert len(about) >= 3, about  # released for a retry, Dramatiq's retry, the success
    assert all(line.get("run_id") == submitted["run_id"] and line.get("message_id") for line in about), about
    attempts = {line["attempt"] for line in about if line["logger"] == "podflow.runner"}
    assert attempts == {1, 2}
    # Dramatiq's own lines about the message carry the run too
    retried = [line for line in parsed(json_lines) if str(line["logger"]).startswith("dramatiq.middleware.retries")]
    assert retried and all(line["run_id"] == submitted["run_id"] for line in retried), retried
