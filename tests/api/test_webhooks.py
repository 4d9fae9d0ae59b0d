"""callback_url on the API: validated at submit, the default URL applied, the delivery shown on the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from podflow.models import WebhookDelivery
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from podflow.views import ROUTE_PATHS
from tests.api.conftest import Api, error, finish_with_files, serve, settings_for

HOOK = "http://127.0.0.1:9/hooks/podflow"


@pytest.fixture
def guarded(tmp_path: Path, redis_url: str) -> Iterator[Api]:
    """An app that sends every run's webhook to a default URL, and only to hooks.example.com."""
    settings = settings_for(
        tmp_path,
        broker_url=redis_url,
        webhook_url="https://hooks.example.com/podflow",
        webhook_allowed_hosts="hooks.example.com, *.hooks.example.com",
    )
    with serve(create_app(settings)) as served:
        yield served


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http://", "javascript:alert(1)", 7]
)
@pytest.mark.parametrize("route", ["/api/podcast/generate", "/api/podcast/runs"])
def test_a_callback_url_that_is_not_http_is_a_422_naming_the_field(api: Api, url: object, route: str) -> None:
    body = error(api.client.post(route, json=api.request(callback_url=url)), 422, "validation_error")
    assert body["details"][0]["field"] == "callback_url" and body["message"].startswith("callback_url: ")
    assert api.store.list_runs().runs == []


def test_a_run_with_a_callback_url_shows_its_webhook_waiting_then_its_delivery(api: Api) -> None:
    created = api.submit(callback_url=HOOK)
    view = api.client.get(created["links"]["self"]).json()
    assert view["webhook"] == {
        "url": HOOK, "state": "waiting", "attempts": 0, "next_attempt_at": None, "last_attempt_at": None,
        "last_status": None, "last_error": None, "reply_excerpt": None, "delivered_at": None,
    }  # fmt: skip
    finish_with_files(api, created["run_id"])
    view = api.client.get(created["links"]["self"]).json()
    assert view["status"] == "SUCCESS" and view["webhook"]["state"] == "pending"
    assert view["webhook"]["next_attempt_at"] == view["finished_at"]
    now = utcnow()
    (claimed,) = api.store.claim_webhooks(now=now, lease_until=now)
    failed = WebhookDelivery(outcome="retrying", last_attempt_at=now, last_status=502, reply_excerpt="bad gateway")
    api.store.record_webhook(claimed.run_id, 1, delivery=failed, next_at=now)
    hook = api.client.get(created["links"]["self"]).json()["webhook"]
    assert hook["state"] == "pending" and hook["attempts"] == 1 and hook["last_status"] == 502
    assert hook["reply_excerpt"] == "bad gateway"
    api.store.claim_webhooks(now=utcnow(), lease_until=utcnow())
    done = WebhookDelivery(outcome="delivered", last_attempt_at=now, last_status=204, delivered_at=now)
    api.store.record_webhook(claimed.run_id, 2, delivery=done, next_at=None)
    hook = api.client.get(created["links"]["self"]).json()["webhook"]
    assert hook["state"] == "delivered" and hook["attempts"] == 2 and hook["delivered_at"] is not None


def test_a_run_without_a_callback_url_shows_no_webhook(api: Api) -> None:
    created = api.submit()
    assert api.client.get(created["links"]["self"]).json()["webhook"] is None


def test_the_default_webhook_url_applies_and_a_host_not_allowed_is_a_422(guarded: Api) -> None:
    created = guarded.submit()
    assert guarded.store.get_run(created["run_id"]).callback_url == "https://hooks.example.com/podflow"
    mine = guarded.submit(callback_url="https://eu.hooks.example.com/mine")
    assert guarded.store.get_run(mine["run_id"]).callback_url == "https://eu.hooks.example.com/mine"
    for route in ("/api/podcast/generate", "/api/podcast/runs"):
        refused = guarded.client.post(route, json=guarded.request(callback_url="http://169.254.169.254/latest"))
        body = error(refused, 422, "validation_error")
        assert body["details"][0]["field"] == "callback_url" and "PODFLOW_WEBHOOK_ALLOWED_HOSTS" in body["message"]
    assert len(guarded.store.list_runs().runs) == 2


def test_a_retry_keeps_the_webhook_of_the_run_it_retries(api: Api) -> None:
    created = api.submit(callback_url=HOOK)
    api.client.post(created["links"]["cancel"])
    retried = api.client.post(created["links"]["retry"]).json()
    assert api.store.get_run(retried["run_id"]).callback_url == HOOK
    assert api.store.get_run(created["run_id"]).status is RunStatus.REVOKED


def test_the_webhook_events_links_are_the_apis_routes(api: Api) -> None:
    params = {"run_id": "run_x", "message_id": "m"}
    for name, template in ROUTE_PATHS.items():
        wanted = {k: v for k, v in params.items() if "{" + k + "}" in template}
        assert str(api.app.url_path_for(name, **wanted)) == template.format(**wanted), name
