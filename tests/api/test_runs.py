"""Runs over HTTP: submit, idempotency, create and start, list, get, cancel, retry, delete."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from podflow.dispatch.queue import QueueDispatcher
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests import generators
from tests.api.conftest import ABSENT, Api, InProcessWorker, error, finish_with_files, serve, settings_for
from tests.execution import wait_for
from tests.servers import RedisServer, free_port

# -- submit ------------------------------------------------------------------------


def test_a_submit_is_accepted_with_the_run_id_status_and_message_id(api: Api) -> None:
    response = api.client.post("/api/podcast/generate", json=api.request())
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "PENDING" and body["mode"] == "queue" and body["run_id"].startswith("run_")
    assert body["message_id"] and body["created_at"].endswith("Z")
    assert body["links"]["self"] == f"/api/podcast/runs/{body['run_id']}"
    assert body["links"]["task"] == f"/api/podcast/tasks/{body['message_id']}"
    run = api.store.get_run(body["run_id"])
    assert run.message_id == body["message_id"]
    # the send's confirmation is written with the others of its batch (dispatch.outbox.EnqueueMarks)
    wait_for(lambda: api.store.get_run(body["run_id"]).enqueued_at is not None, what="the confirmation")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"source_ids": []}, "source_ids"),
        ({"source_ids": "src_1"}, "source_ids"),
        ({"episode_name": 42}, "episode_name"),
        ({"episode_profile": "no_such_profile"}, "episode_profile"),
        ({"speaker_profile": "no_such_profile"}, "speaker_profile"),
        ({"source_ids": ["src_missing"]}, "source_ids"),
        ({"episode_name": "   "}, "episode_name"),
        ({"source_ids": [7]}, "source_ids[0]"),
        ({"briefing_suffix": True}, "briefing_suffix"),
        ({"priority": "urgent"}, "priority"),
        ({"start_at": "2030-01-01T06:00:00"}, "start_at"),  # no zone: whose six o'clock?
        ({"start_at": "2020-01-01T06:00:00Z"}, "start_at"),  # past
        ({"start_at": "2999-01-01T06:00:00+02:00"}, "start_at"),  # beyond PODFLOW_MAX_SCHEDULE_AHEAD
        ({"start_at": "next tuesday"}, "start_at"),
    ],
)
def test_a_bad_submit_is_a_422_naming_the_field_and_records_nothing(api: Api, change: dict, field: str) -> None:
    body = error(api.client.post("/api/podcast/generate", json=api.request(**change)), 422, "validation_error")
    assert body["message"].startswith(f"{field}: ")
    assert body["details"][0]["field"] == field and body["details"][0]["message"]
    assert api.store.list_runs().runs == []


def test_a_scheduled_high_priority_run_is_pending_and_shows_both(api: Api) -> None:
    from datetime import datetime, timedelta

    start_at = (utcnow() + timedelta(hours=3)).replace(microsecond=0)
    when = datetime.fromisoformat
    body = {**api.request(), "priority": "high", "start_at": start_at.astimezone().isoformat()}
    submitted = api.client.post("/api/podcast/generate", json=body)
    assert submitted.status_code == 202, submitted.text
    assert (submitted.json()["priority"], when(submitted.json()["start_at"])) == ("high", start_at)
    run = api.client.get(f"/api/podcast/runs/{submitted.json()['run_id']}").json()
    assert (run["status"], run["priority"], when(run["start_at"])) == ("PENDING", "high", start_at)
    listed = api.client.get("/api/podcast/runs").json()["runs"]
    assert [(r["priority"], when(r["start_at"])) for r in listed] == [("high", start_at)]
    broker = api.app.state.podflow.broker  # three hours ahead: beyond the horizon, held by the store, not sent
    delayed = f"{broker.namespace}:podcast.high.DQ.msgs"
    assert broker.client.hlen(delayed) == 0
    assert api.app.state.podflow.store.get_run(run["run_id"]).outbox_at == start_at - timedelta(hours=1)
    soon = {**body, "start_at": (utcnow() + timedelta(minutes=30)).isoformat()}  # within it: sent, delayed
    assert api.client.post("/api/podcast/generate", json=soon).status_code == 202
    assert broker.client.hlen(delayed) == 1
    # a draft may be scheduled too, and is checked the same way
    late = api.client.post("/api/podcast/runs", json={**api.request(), "start_at": "2020-01-01T00:00:00Z"})
    assert error(late, 422, "validation_error")["details"][0]["field"] == "start_at"
    cancelled = api.client.post(f"/api/podcast/runs/{run['run_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "REVOKED"  # before it starts


def test_a_shorter_max_schedule_ahead_is_honoured_on_both_routes(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    monkeypatch.setenv("PODFLOW_MAX_SCHEDULE_AHEAD", "3600")  # an hour, not 30 days
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url))) as api:
        assert api.settings.max_schedule_ahead_s == 3600
        too_far = {**api.request(), "start_at": (utcnow() + timedelta(hours=2)).isoformat()}
        for route in ("/api/podcast/generate", "/api/podcast/runs"):
            body = error(api.client.post(route, json=too_far), 422, "validation_error")
            assert body["details"][0]["field"] == "start_at", route
            assert body["message"] == "start_at: must be at most 3600 s ahead (PODFLOW_MAX_SCHEDULE_AHEAD)", route
        assert api.store.list_runs().runs == []
        within = {**api.request(), "start_at": (utcnow() + timedelta(minutes=30)).isoformat()}
        assert api.client.post("/api/podcast/generate", json=within).status_code == 202
        assert api.client.post("/api/podcast/runs", json=within).status_code == 201


def test_a_missing_field_and_a_body_that_is_not_json_are_422s(api: Api) -> None:
    request = api.request()
    del request["episode_name"]
    missing = error(api.client.post("/api/podcast/generate", json=request), 422, "validation_error")
    assert missing["details"] == [{"field": "episode_name", "message": "Field required"}]
    for bad in (b"{nope", b"", b"[1]"):
        body = error(api.client.post("/api/podcast/generate", content=bad), 422, "validation_error")
        assert body["details"][0]["field"] == "body"


def test_the_same_idempotency_key_and_body_return_the_same_run_and_another_body_is_a_422(api: Api) -> None:
    request = api.request()
    headers = {"Idempotency-Key": "order-66"}
    first = api.client.post("/api/podcast/generate", json=request, headers=headers)
    again = api.client.post("/api/podcast/generate", json=request, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["run_id"] == first.json()["run_id"]
    other = api.client.post("/api/podcast/generate", json={**request, "episode_name": "other"}, headers=headers)
    assert first.json()["run_id"] in error(other, 422, "idempotency_conflict")["message"]
    assert len(api.store.list_runs().runs) == 1
    bad_key = api.client.post("/api/podcast/generate", json=request, headers={"Idempotency-Key": "a b"})
    assert error(bad_key, 422, "validation_error")["details"][0]["field"] == "Idempotency-Key"


def test_a_replay_of_a_scheduled_submit_after_its_start_is_the_same_run_not_a_422(
    tmp_path: Path, redis_url: str
) -> None:
    now = [utcnow()]
    app = create_app(settings_for(tmp_path, broker_url=redis_url), clock=lambda: now[0])
    with serve(app) as api:
        request = {**api.request(), "start_at": (now[0] + timedelta(minutes=5)).isoformat()}
        headers = {"Idempotency-Key": "weekly-42"}
        first = api.client.post("/api/podcast/generate", json=request, headers=headers)
        now[0] += timedelta(minutes=10)  # the client's retry comes after the start it asked for
        again = api.client.post("/api/podcast/generate", json=request, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["run_id"] == first.json()["run_id"]
        other = api.client.post("/api/podcast/generate", json={**request, "episode_name": "x"}, headers=headers)
        error(other, 422, "idempotency_conflict")  # another body is still refused, as a conflict
        late = api.client.post("/api/podcast/generate", json=request, headers={"Idempotency-Key": "weekly-43"})
        assert error(late, 422, "validation_error")["details"][0]["field"] == "start_at"  # a new key: checked
        assert len(api.store.list_runs().runs) == 1


class CountingStore(SqliteStore):
    """Records how many ``create_run`` calls overlap (each holds on a moment first)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, heartbeat_timeout_s=60, max_attempts=3)
        self._lock = threading.Lock()
        self.inside = 0
        self.most_at_once = 0

    def create_run(self, run: Any, **options: Any) -> Any:
        with self._lock:
            self.inside += 1
            self.most_at_once = max(self.most_at_once, self.inside)
        try:
            time.sleep(0.05)
            return super().create_run(run, **options)
        finally:
            with self._lock:
                self.inside -= 1


def test_twenty_concurrent_submits_with_one_key_make_exactly_one_run(tmp_path: Path, redis_url: str) -> None:
    store = CountingStore(tmp_path / "podflow.sqlite3")
    try:
        with serve(create_app(settings_for(tmp_path, broker_url=redis_url), store=store)) as api:
            request = api.request()
            start = threading.Barrier(20)
            responses: list[httpx.Response] = []

            def submit() -> None:
                with httpx.Client(base_url=api.url, timeout=30) as client:  # a connection each
                    start.wait()
                    responses.append(
                        client.post("/api/podcast/generate", json=request, headers={"Idempotency-Key": "same"})
                    )

            threads = [threading.Thread(target=submit) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        store.close()
    assert store.most_at_once > 1, "the requests did not overlap"
    # one made it; the others got it back (200), or were told the first was still handing it over
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 1 and set(codes) <= {200, 202, 409}, codes
    ids = {r.json()["run_id"] if r.status_code != 409 else r.json()["error"]["details"]["run_id"] for r in responses}
    assert len(ids) == 1
    assert all(r.headers["Retry-After"] for r in responses if r.status_code == 409)
    reopened = SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=60, max_attempts=3)
    assert len(reopened.list_runs().runs) == 1
    reopened.close()


# -- create and start ----------------------------------------------------------------


def test_a_created_run_waits_until_started_and_starts_once(api: Api) -> None:
    created = api.client.post("/api/podcast/runs", json=api.request())
    assert created.status_code == 201
    run = created.json()
    assert run["status"] == "PENDING" and run["message_id"] is None and run["enqueued_at"] is None
    started = api.client.post(f"/api/podcast/runs/{run['run_id']}/start")
    assert started.status_code == 202 and started.json()["message_id"]
    assert api.store.get_run(run["run_id"]).enqueued_at is not None
    again = error(api.client.post(f"/api/podcast/runs/{run['run_id']}/start"), 409, "conflict")
    assert "already started" in again["message"] and again["details"] == {"run_id": run["run_id"], "status": "PENDING"}
    error(api.client.post(f"/api/podcast/runs/{ABSENT}/start"), 404, "not_found")


def test_a_run_that_is_not_pending_cannot_start(api: Api) -> None:
    run_id = api.client.post("/api/podcast/runs", json=api.request()).json()["run_id"]
    api.client.post(f"/api/podcast/runs/{run_id}/cancel")
    assert "REVOKED" in error(api.client.post(f"/api/podcast/runs/{run_id}/start"), 409, "conflict")["message"]


def test_a_created_run_is_idempotent_too(api: Api) -> None:
    request, headers = api.request(), {"Idempotency-Key": "draft-1"}
    first = api.client.post("/api/podcast/runs", json=request, headers=headers)
    again = api.client.post("/api/podcast/runs", json=request, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["run_id"] == again.json()["run_id"]
    other = api.client.post("/api/podcast/runs", json={**request, "episode_name": "x"}, headers=headers)
    error(other, 422, "idempotency_conflict")


# -- list and get ----------------------------------------------------------------------


def test_runs_are_listed_newest_first_by_status_in_pages(api: Api) -> None:
    ids = [api.submit(episode_name=f"n{i}")["run_id"] for i in range(3)]
    api.client.post(f"/api/podcast/runs/{ids[0]}/cancel")
    page = api.client.get("/api/podcast/runs?limit=2").json()  # a query string's integer is parsed
    assert [r["run_id"] for r in page["runs"]] == ids[:0:-1] and page["next_cursor"]
    rest = api.client.get("/api/podcast/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [r["run_id"] for r in rest["runs"]] == [ids[0]] and rest["next_cursor"] is None
    revoked = api.client.get("/api/podcast/runs", params={"status": "REVOKED", "_": "1"}).json()["runs"]
    assert [r["run_id"] for r in revoked] == [ids[0]]


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 201}, "limit"), ({"limit": "x"}, "limit"), ({"status": "DONE"}, "status"),
                          ({"cursor": "garbage!"}, "cursor"), ({"limit": "1_0"}, "limit"), ({"limit": "1e1"}, "limit")]
)
def test_a_bad_listing_query_is_a_422_naming_the_parameter(api: Api, params: dict, field: str) -> None:
    body = error(api.client.get("/api/podcast/runs", params=params), 422, "validation_error")
    assert body["details"][0]["field"] == field


def test_a_run_is_shown_whole_with_links_and_no_paths_on_disk(api: Api) -> None:
    run_id = api.submit()["run_id"]
    finish_with_files(api, run_id, audio="", transcript="{}")
    run = api.client.get(f"/api/podcast/runs/{run_id}").json()
    assert run["status"] == "SUCCESS" and run["attempt"] == 1 and run["finished_at"]
    assert run["attempts_counted"] == 1
    assert [h["status"] for h in run["history"]] == ["PENDING", "STARTED", "SUCCESS"]
    assert run["result"] == {
        "duration_s": 0.5,
        "audio_url": f"/api/podcast/runs/{run_id}/audio",
        "transcript_url": f"/api/podcast/runs/{run_id}/transcript",
        "outline_url": None,
        "stages": {},
        "reused_from_retried": 0,
    }
    assert set(run["links"]) == {"self", "events", "cancel", "retry", "task"}
    assert "podcasts/" not in str(run) and "request_hash" not in run
    error(api.client.get(f"/api/podcast/runs/{ABSENT}"), 404, "not_found")


# -- cancel, retry, delete -----------------------------------------------------------------


def test_cancel_revokes_a_run_and_a_finished_run_is_a_409(api: Api) -> None:
    run_id = api.submit()["run_id"]
    cancelled = api.client.post(f"/api/podcast/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "REVOKED"
    body = error(api.client.post(f"/api/podcast/runs/{run_id}/cancel"), 409, "conflict")
    assert body["details"] == {"run_id": run_id, "status": "REVOKED"}
    error(api.client.post(f"/api/podcast/runs/{ABSENT}/cancel"), 404, "not_found")


def test_retry_makes_a_new_run_for_a_revoked_one_and_refuses_a_pending_one(api: Api) -> None:
    run_id = api.submit()["run_id"]
    assert "PENDING" in error(api.client.post(f"/api/podcast/runs/{run_id}/retry"), 409, "conflict")["message"]
    api.client.post(f"/api/podcast/runs/{run_id}/cancel")
    headers = {"Idempotency-Key": "retry-1"}
    retried = api.client.post(f"/api/podcast/runs/{run_id}/retry", headers=headers)
    assert retried.status_code == 202
    new = retried.json()
    assert new["retry_of"] == run_id and new["run_id"] != run_id and new["status"] == "PENDING"
    assert retried.headers["Location"] == f"/api/podcast/runs/{new['run_id']}"  # the new run, not the retried one
    assert retried.headers["Retry-After"] == "2"
    again = api.client.post(f"/api/podcast/runs/{run_id}/retry", headers=headers)
    assert again.status_code == 200 and again.json()["run_id"] == new["run_id"]
    other = api.submit()["run_id"]
    api.client.post(f"/api/podcast/runs/{other}/cancel")
    error(api.client.post(f"/api/podcast/runs/{other}/retry", headers=headers), 422, "idempotency_conflict")
    error(api.client.post(f"/api/podcast/runs/{ABSENT}/retry"), 404, "not_found")


def test_delete_removes_the_run_and_its_files_but_not_while_it_runs(api: Api) -> None:
    run_id = api.submit()["run_id"]
    api.store.claim(run_id, now=utcnow())
    assert "cancel it first" in error(api.client.delete(f"/api/podcast/runs/{run_id}"), 409, "conflict")["message"]
    api.client.post(f"/api/podcast/runs/{run_id}/cancel")
    files = api.settings.data_dir / "podcasts" / run_id
    files.mkdir(parents=True)
    assert api.client.delete(f"/api/podcast/runs/{run_id}").status_code == 204
    assert not files.exists() and api.store.get_run(run_id) is None
    error(api.client.delete(f"/api/podcast/runs/{run_id}"), 404, "not_found")


# -- the broker down -----------------------------------------------------------------------


def test_a_submit_with_the_broker_down_records_the_run_and_names_it(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve(create_app(settings_for(tmp_path, broker_url=dead))) as api:
        refused = api.client.post("/api/podcast/generate", json=api.request())
        assert refused.headers["Retry-After"] == "5"
        body = error(refused, 503, "broker_unavailable")
        run_id = body["details"]["run_id"]
        assert f"run {run_id} was recorded" in body["message"] and "do not resubmit" in body["message"]
        assert body["details"]["status"] == "PENDING" and body["details"]["enqueued"] is False
        run = api.client.get(f"/api/podcast/runs/{run_id}").json()
        assert run["status"] == "PENDING" and "broker unreachable" in run["enqueue_error"]
        created = api.client.post("/api/podcast/runs", json=api.request()).json()["run_id"]
        refused = api.client.post(f"/api/podcast/runs/{created}/start")
        assert refused.headers["Retry-After"] == "5"
        error(refused, 503, "broker_unavailable")


@pytest.mark.slow
def test_a_run_submitted_while_the_broker_is_stopped_completes_after_it_returns_and_a_sweep(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = settings_for(tmp_path, broker_url=redis.url)
        with serve(create_app(settings)) as api:
            assert api.client.get("/readyz").status_code == 200
            request = api.request()
            redis.stop()  # the broker goes away mid-test
            body = error(api.client.post("/api/podcast/generate", json=request), 503, "broker_unavailable")
            run_id = body["details"]["run_id"]
            assert run_id in body["message"] and body["details"]["enqueued"] is False
            assert error(api.client.get("/readyz"), 503, "not_ready")["details"]["broker"].startswith("unavailable")

            redis.start()  # back, at the same address
            policy = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0)
            dispatcher = QueueDispatcher(broker=build_broker(settings))  # the scheduler's own
            with InProcessWorker(settings, api.store, generators.by_name):
                assert sweep(api.store, now=utcnow(), policy=policy, dispatcher=dispatcher).enqueued == 1
                done = wait_for(
                    lambda: (r := api.client.get(f"/api/podcast/runs/{run_id}").json())["status"] == "SUCCESS" and r,
                    what="the run to complete",
                )
            close_broker(dispatcher.broker)
        assert done["attempt"] == 1 and done["enqueue_error"] is None
    finally:
        redis.stop()


def test_a_202_and_a_201_say_where_the_run_is_and_a_202_when_to_poll(api: Api) -> None:
    submitted = api.client.post("/api/podcast/generate", json=api.request())
    run_id = submitted.json()["run_id"]
    assert submitted.headers["Location"] == f"/api/podcast/runs/{run_id}"
    assert submitted.headers["Retry-After"] == "2"
    assert api.client.get(submitted.headers["Location"]).json()["run_id"] == run_id
    draft = api.client.post("/api/podcast/runs", json=api.request())
    assert draft.status_code == 201 and draft.headers["Location"] == f"/api/podcast/runs/{draft.json()['run_id']}"
    started = api.client.post(f"/api/podcast/runs/{draft.json()['run_id']}/start")
    assert started.status_code == 202 and started.headers["Location"] == draft.headers["Location"]
    assert started.headers["Retry-After"] == "2"


class HeldDispatcher:
    """A broker that holds every send until ``release`` is set."""

    mode = "queue"
    durable = True

    def __init__(self) -> None:
        self.sending = threading.Event()
        self.release = threading.Event()

    def new_message_id(self) -> str:
        return "msg-" + os.urandom(8).hex()

    def send(self, run_id: str, message_id: str | None, **options: Any) -> None:
        self.sending.set()
        assert self.release.wait(10)

    def missing(self, refs: Any) -> set[str] | None:
        return None

    def requeue_orphans(self) -> None:
        pass


def test_a_key_whose_first_request_is_still_in_flight_is_a_409_with_retry_after(tmp_path: Path) -> None:
    dispatcher = HeldDispatcher()
    with serve(create_app(settings_for(tmp_path), dispatcher=dispatcher)) as api:  # type: ignore[arg-type]
        request, headers = api.request(), {"Idempotency-Key": "slow-broker"}
        first: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: first.append(
                httpx.post(api.url + "/api/podcast/generate", json=request, headers=headers, timeout=20)
            )
        )
        thread.start()
        assert dispatcher.sending.wait(10)
        again = api.client.post("/api/podcast/generate", json=request, headers=headers)
        body = error(again, 409, "request_in_flight")
        assert again.headers["Retry-After"] == "2" and body["details"]["run_id"] in body["message"]
        dispatcher.release.set()
        thread.join(20)
        assert first[0].status_code == 202
        replay = api.client.post("/api/podcast/generate", json=request, headers=headers)
        assert replay.status_code == 200 and replay.json()["run_id"] == first[0].json()["run_id"]


def test_runs_are_listed_by_status_in_any_case_by_search_and_by_profile(api: Api) -> None:
    weekly = api.submit(episode_name="Weekly digest")["run_id"]
    other = api.submit(episode_name="Daily notes", episode_profile="deep_dive", speaker_profile="solo")["run_id"]
    for status in ("pending", "Pending", "PENDING"):
        listed = api.client.get("/api/podcast/runs", params={"status": status})
        assert listed.status_code == 200 and {r["run_id"] for r in listed.json()["runs"]} == {weekly, other}
    assert error(api.client.get("/api/podcast/runs?status=nope"), 422, "validation_error")["details"][0]["field"] == (
        "status"
    )
    found = api.client.get("/api/podcast/runs", params={"q": "weekly"}).json()["runs"]
    assert [r["run_id"] for r in found] == [weekly]
    assert [r["run_id"] for r in api.client.get("/api/podcast/runs", params={"q": other[:10]}).json()["runs"]] == [
        other
    ]
    by_profile = api.client.get("/api/podcast/runs", params={"episode_profile": "deep_dive"}).json()["runs"]
    assert [r["run_id"] for r in by_profile] == [other]
    created = api.store.get_run(weekly).created_at
    window = {"created_after": created.replace(tzinfo=None).isoformat(), "created_before": "2999-01-01T00:00:00Z"}
    assert {r["run_id"] for r in api.client.get("/api/podcast/runs", params=window).json()["runs"]} >= {weekly}
    bad = api.client.get("/api/podcast/runs", params={"created_after": "yesterday"})
    assert error(bad, 422, "validation_error")["details"][0]["field"] == "created_after"
