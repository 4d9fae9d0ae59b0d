"""GET /metrics and GET /api/monitor/overview on a live app, with runs really executed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from podflow.states import RunStatus
from tests.api.conftest import Api, error, serve, settings_for
from tests.conftest import Samples, metric_samples
from tests.execution import finished

TOKEN = "metrics-s3cret"


def samples(response: httpx.Response) -> Samples:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return metric_samples(response.text)


def status(name: str) -> tuple[tuple[str, str], ...]:
    return (("status", name),)


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[Api]:
    """Thread mode: the API executes runs itself (tests.generators.by_name)."""
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:by_name")
    with serve(create_app(settings)) as api:
        yield api


def test_metrics_match_the_store_after_runs_succeed_fail_and_are_cancelled_and_survive_a_deletion(
    threaded: Api,
) -> None:
    api = threaded
    ok = api.submit(episode_name="noop")["run_id"]
    bad = api.submit(episode_name="broken")["run_id"]
    slow = api.submit(episode_name="slow:30")["run_id"]
    for run_id in (ok, bad):
        finished(api.store, run_id)
    assert api.client.post(f"/api/podcast/runs/{slow}/cancel").status_code == 200

    scraped = samples(api.client.get("/metrics"))
    counts = api.store.count_by_status()
    for run_status in RunStatus:
        assert scraped[("podflow_runs", status(run_status))] == counts[run_status]
    assert scraped[("podflow_runs_created_total", ())] == 3
    finished_total = {s: scraped[("podflow_runs_finished_total", status(s))] for s in ("SUCCESS", "FAILURE", "REVOKED")}
    assert finished_total == {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1}
    assert scraped[("podflow_runs_failed_total", (("error_type", "ValueError"),))] == 1
    assert scraped[("podflow_run_duration_seconds_count", status("SUCCESS"))] == 1
    assert scraped[("podflow_run_duration_seconds_bucket", (("le", "+Inf"), *status("REVOKED")))] == 1
    assert scraped[("podflow_sweeps_total", ())] >= 1  # thread mode sweeps at start

    assert api.client.delete(f"/api/podcast/runs/{ok}").status_code == 204
    after = samples(api.client.get("/metrics"))
    assert after[("podflow_runs", status("SUCCESS"))] == 0
    assert after[("podflow_runs_created_total", ())] == 3
    assert after[("podflow_runs_finished_total", status("SUCCESS"))] == 1
    assert after[("podflow_run_duration_seconds_count", status("SUCCESS"))] == 1


def test_queue_mode_metrics_include_the_queue_and_the_broker(api: Api) -> None:
    api.submit(episode_name="noop")  # no worker: it stays ready in the queue
    scraped = samples(api.client.get("/metrics"))
    assert scraped[("podflow_broker_up", ())] == 1
    assert scraped[("podflow_queue_messages", (("queue", "podcast"), ("state", "ready")))] == 1


def test_the_overview_shows_runs_queues_and_the_last_hour(api: Api) -> None:
    api.submit(episode_name="noop")
    body = api.client.get("/api/monitor/overview").json()
    assert set(body) == {
        "at",
        "mode",
        "store_id",
        "totals",
        "oldest_pending_age_s",
        "finished_per_minute",
        "broker",
        "queues",
        "workers",
        "worker_details",
        "workers_drop_off_s",
        "last_sweep",
    }
    assert body["mode"] == "queue" and body["totals"]["PENDING"] == 1 and body["oldest_pending_age_s"] >= 0
    assert [q["name"] for q in body["queues"]] == ["podcast.high", "podcast", "podcast.low"]  # a queue per band
    assert body["queues"][1] == {"name": "podcast", "ready": 1, "delayed": 0, "dead": 0, "unacked": 0}
    assert body["workers"] == [] and body["broker"]["kind"] == "redis"
    assert body["broker"]["queue"] == "podcast" and body["broker"]["foreign_stores"] == []
    assert body["store_id"] == api.store.store_id
    assert len(body["finished_per_minute"]) == 60
    assert body["last_sweep"] == {
        "at": None,
        "age_s": None,
        "sweeps": 0,
        "runs": {
            "time_limit": 0,
            "worker_lost": 0,
            "redispatched": 0,
            "enqueued": 0,
            "requeued": 0,
            "expired": 0,
            "checkpoints": 0,
            "deleted": 0,
            "send_errors": 0,
        },
    }


def test_with_a_token_metrics_and_the_overview_require_it_and_the_document_says_so(
    tmp_path: Path, redis_url: str
) -> None:
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url, api_token=TOKEN))) as api:
        error(api.client.get("/metrics"), 401, "unauthorized")
        error(api.client.get("/api/monitor/overview"), 401, "unauthorized")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert ("podflow_runs_created_total", ()) in samples(api.client.get("/metrics", headers=headers))
        assert api.client.get("/api/monitor/overview", headers=headers).status_code == 200
        assert api.client.get("/healthz").status_code == 200
        spec = api.client.get("/openapi.json").json()
        metrics = spec["paths"]["/metrics"]["get"]
        assert metrics["security"] == [{"bearerAuth": []}] and {"401", "503"} <= set(metrics["responses"])
        assert "security" not in spec["paths"]["/dashboard"]["get"]


def test_a_store_that_went_away_makes_a_scrape_a_503(api: Api) -> None:
    api.store.close()
    error(api.client.get("/metrics"), 503, "store_unavailable")


def test_dead_letters_are_listed_with_their_run_and_requeued_through_the_api(api: Api) -> None:
    from tests.worker.test_deadletter import dead_letter

    run_id = api.submit()["run_id"]
    broker = api.app.state.podflow.broker
    consumer = broker.consume("podcast", prefetch=1, timeout=1000)  # the submitted message: drop it
    consumer.ack(next(m for m in consumer if m is not None))
    consumer.close()
    dead = dead_letter(broker, run_id)
    listed = api.client.get("/api/monitor/queues/podcast/dead").json()
    assert listed["total"] == 1 and listed["queue"] == "podcast"
    [message] = listed["messages"]
    assert (message["message_id"], message["run_id"], message["run_status"]) == (dead.message_id, run_id, "PENDING")
    assert message["error"] == "ValueError: boom"
    overview = api.client.get("/api/monitor/overview").json()
    assert overview["queues"][1]["dead"] == 1 and overview["worker_details"] == []
    requeued = api.client.post(f"/api/monitor/queues/podcast/dead/{message['id']}/requeue")
    assert requeued.status_code == 200 and requeued.json()["run_id"] == run_id
    assert api.client.get("/api/monitor/overview").json()["queues"][1] == {
        "name": "podcast", "ready": 1, "delayed": 0, "dead": 0, "unacked": 0}  # fmt: skip
    error(api.client.post(f"/api/monitor/queues/podcast/dead/{message['id']}/requeue"), 404, "not_found")
    error(api.client.get("/api/monitor/queues/nope/dead"), 404, "not_found")


def test_dead_letters_in_thread_mode_are_a_501_saying_why(tmp_path: Path) -> None:
    with serve(create_app(settings_for(tmp_path, mode="thread", generator="tests.generators:noop"))) as api:
        assert "thread mode" in error(api.client.get("/api/monitor/queues/podcast/dead"), 501, "not_supported")[
            "message"
        ]
