"""Completion webhooks delivered over real HTTP to a receiver on 127.0.0.1, from a real store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from podflow.models import Run, RunResult
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.views import template_paths
from podflow.webhooks.delivery import REPLY_EXCERPT_CHARS, Deliverer, DeliveryPolicy
from tests.conftest import make_run
from tests.execution import wait_for
from tests.webhooks.receiver import Answer, Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PUBLIC = "https://podflow.example.com"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    backend = SqliteStore(tmp_path / "podflow.sqlite3")
    yield backend
    backend.close()


def ended_run(store: SqliteStore, url: str, *, status: RunStatus = RunStatus.SUCCESS, ago_s: float = 0) -> str:
    """A run that just ended (``ago_s`` seconds ago), its webhook owed to ``url``."""
    from datetime import timedelta

    now = utcnow() - timedelta(seconds=ago_s)
    run, _ = store.create_run(make_run(now, callback_url=url))
    attempt = store.claim(run.run_id, now=now)
    assert attempt == 1
    if status is RunStatus.REVOKED:
        assert store.cancel(run.run_id, now=now) is not None
        return run.run_id
    result = RunResult(audio_path=f"podcasts/{run.run_id}/episode.mp3", duration_s=3.0)
    assert store.finish(run.run_id, attempt, status=status, now=now, result=result) is not None
    return run.run_id


def deliverer(store: SqliteStore, **policy: object) -> Deliverer:
    options = {"secret": SECRET, "timeout_s": 0.5, "backoff_s": 0.05, **policy}
    return Deliverer(store=lambda: store, policy=DeliveryPolicy(**options), path=template_paths(PUBLIC))  # type: ignore[arg-type]


def deliver_until(store: SqliteStore, sender: Deliverer, run_id: str, state: str) -> None:
    def done() -> bool:
        sender.deliver_due(now=utcnow())
        run = store.get_run(run_id)
        assert run is not None
        return run.webhook is not None and run.webhook.outcome == state

    wait_for(done, timeout=20, interval=0.02, what=f"the webhook to be {state}")


def test_a_receiver_failing_twice_gets_one_signed_event_on_the_third_attempt(store: SqliteStore) -> None:
    receiver = Receiver([500, ("hang", 2.0)]).start()  # a 500, then no answer within the timeout
    sender = deliverer(store)
    try:
        run_id = ended_run(store, receiver.url)
        deliver_until(store, sender, run_id, "delivered")
    finally:
        sender.close()
        receiver.stop()
    assert len(receiver.received) == 3
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 1  # the same event on every attempt: receivers deduplicate by it
    last = receiver.received[-1]
    event = Webhook(SECRET).verify(last.body, last.headers)
    assert event["type"] == "run.succeeded" and event["data"]["run_id"] == run_id
    assert event["data"]["status"] == "SUCCESS" and event["timestamp"] == event["data"]["finished_at"]
    assert event["timestamp"].endswith("Z") and int(last.headers["webhook-timestamp"]) > 1_700_000_000
    assert event["data"]["result"]["audio_url"] == f"{PUBLIC}/api/podcast/runs/{run_id}/audio"
    assert {r.body for r in receiver.received} == {last.body}  # one body, every attempt
    run = store.get_run(run_id)
    assert run is not None and run.webhook is not None
    assert run.webhook_attempts == 3 and run.webhook_due_at is None
    assert run.webhook.last_status == 200 and run.webhook.delivered_at is not None
    assert store.stats().webhooks == {"delivered": 1, "retried": 2, "expired": 0}
    # nothing is sent again once a 2xx came back
    assert sender.deliver_due(now=utcnow()) == {}


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Started receivers (``Receiver``'s arguments), stopped after the test."""
    started: list[Receiver] = []

    def start(script: list[Answer], **options: int) -> Receiver:
        started.append(Receiver(script, **options).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def attempted(
    store: SqliteStore, url: str, counted: dict[str, int], *, status: RunStatus = RunStatus.SUCCESS, ago_s: float = 0,
    **policy: object,
) -> Run:
    """A run ended ``ago_s`` ago and its one delivery attempt (counted as ``counted``); the run after it."""
    sender = deliverer(store, **{"backoff_s": 60, **policy})
    try:
        run_id = ended_run(store, url, status=status, ago_s=ago_s)
        assert sender.deliver_due(now=utcnow()) == counted
        assert sender.deliver_due(now=utcnow()) == {}  # nothing more is due yet
    finally:
        sender.close()
    run = store.get_run(run_id)
    assert run is not None and run.webhook is not None
    return run


def test_a_failure_records_the_status_and_only_an_excerpt_of_the_reply(
    store: SqliteStore, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers([], then=503)
    run = attempted(store, receiver.url, {"retried": 1}, status=RunStatus.FAILURE)
    assert run.webhook is not None
    assert run.webhook.outcome == "retrying" and run.webhook.last_status == 503
    assert run.webhook.reply_excerpt == "x" * REPLY_EXCERPT_CHARS  # of 5000
    assert run.webhook_due_at is not None and run.webhook_due_at > run.webhook.last_attempt_at
    assert json.loads(receiver.received[0].body)["type"] == "run.failed"


@pytest.mark.parametrize("trickle", ["trickle", "trickle-body"], ids=["whole reply", "body after the headers"])
def test_a_receiver_trickling_its_reply_is_cut_off_at_the_timeout_in_total(
    store: SqliteStore, receivers: Callable[..., Receiver], trickle: str
) -> None:
    # one byte every 0.2 s: each read is quick, so only a deadline on the whole POST ends it
    receiver = receivers([(trickle, 0.2)])
    started = time.monotonic()
    run = attempted(store, receiver.url, {"retried": 1}, timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + 0.8  # the attempt, the store's writes and a margin
    assert len(receiver.received) == 1 and run.webhook is not None
    assert run.webhook.outcome == "retrying" and run.webhook.last_error == "timed out after 1 s"
    assert run.webhook.last_status is None and run.webhook.delivered_at is None
    assert run.webhook_due_at is not None and run.webhook_due_at > run.webhook.last_attempt_at


def test_a_redirect_is_not_followed(store: SqliteStore, receivers: Callable[..., Receiver]) -> None:
    elsewhere = receivers([])
    run = attempted(store, receivers([("redirect", elsewhere.url)]).url, {"retried": 1})
    assert elsewhere.received == [] and run.webhook is not None
    assert run.webhook.last_status == 307 and "not followed" in (run.webhook.last_error or "")


def test_a_host_that_is_not_allowed_is_never_posted_to(store: SqliteStore, receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([])
    run = attempted(store, receiver.url, {"retried": 1}, allowed_hosts=("hooks.example.com",))
    assert receiver.received == [] and run.webhook is not None
    assert "ALLOWED_HOSTS" in (run.webhook.last_error or "")


def test_a_webhook_failing_past_its_max_age_is_given_up(store: SqliteStore, receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([], then=500)
    run = attempted(store, receiver.url, {"expired": 1}, status=RunStatus.REVOKED, ago_s=3600, max_age_s=60)
    assert run.webhook is not None
    assert run.webhook.outcome == "expired" and run.webhook_due_at is None and run.webhook_attempts == 1
    assert json.loads(receiver.received[0].body)["type"] == "run.revoked"


def test_the_retry_delay_doubles_from_the_backoff_up_to_ten_minutes() -> None:
    policy = DeliveryPolicy(backoff_s=5)
    assert [policy.retry_delay_s(n) for n in (1, 2, 3, 4, 8, 20)] == [5, 10, 20, 40, 600, 600]
