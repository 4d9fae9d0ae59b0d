"""An old front end, speaking only what the Celery module documented, keeps working.

It knows two requests: ``POST /api/podcast/generate`` (it reads ``celery_task_id``
from the answer) and ``GET /api/podcast/celery/task/{celery_task_id}`` (it reads
``status``, ``ready``, ``successful`` and ``result``). Nothing else.
"""

from __future__ import annotations

from podflow.models import ErrorInfo
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from tests.api.conftest import Api, error, finish_with_files

OLD_FIELDS = {"celery_task_id", "status", "ready", "successful", "result"}


def test_an_old_client_submits_then_polls_its_celery_task_until_it_is_ready(api: Api) -> None:
    answer = api.client.post("/api/podcast/generate", json=api.request(episode_name="Old front end"))
    assert answer.status_code == 202
    task_id = answer.json()["celery_task_id"]
    assert task_id and task_id == answer.json()["message_id"]
    url = f"/api/podcast/celery/task/{task_id}"

    polled = api.client.get(url)
    assert polled.status_code == 200 and set(polled.json()) == OLD_FIELDS
    assert polled.json() == {
        "celery_task_id": task_id,
        "status": "PENDING",
        "ready": False,
        "successful": False,
        "result": None,
    }
    # deprecated, and says where to go instead
    assert polled.headers["Deprecation"].startswith("@")
    run_id = answer.json()["run_id"]
    assert polled.headers["Link"] == f'</api/podcast/runs/{run_id}>; rel="successor-version"'

    finish_with_files(api, run_id, audio="")
    done = api.client.get(url).json()
    assert (done["status"], done["ready"], done["successful"]) == ("SUCCESS", True, True)
    assert done["result"]["run_id"] == run_id
    assert done["result"]["audio_url"] == f"/api/podcast/runs/{run_id}/audio"


def test_an_old_client_sees_a_failure_as_celery_showed_it(api: Api) -> None:
    answer = api.client.post("/api/podcast/generate", json=api.request()).json()
    attempt = api.store.claim(answer["run_id"], now=utcnow())
    assert attempt is not None
    boom = ErrorInfo(type="ValueError", message="boom")
    api.store.finish(answer["run_id"], attempt, status=RunStatus.FAILURE, now=utcnow(), error=boom)
    failed = api.client.get(f"/api/podcast/celery/task/{answer['celery_task_id']}").json()
    assert failed == {
        "celery_task_id": answer["celery_task_id"],
        "status": "FAILURE",
        "ready": True,
        "successful": False,
        "result": "ValueError: boom",
    }


def test_an_unknown_celery_task_is_a_404_not_a_fake_pending(api: Api) -> None:
    assert "nope" in error(api.client.get("/api/podcast/celery/task/nope"), 404, "not_found")["message"]


def test_the_old_routes_are_documented_as_deprecated(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["paths"]["/api/podcast/celery/task/{celery_task_id}"]["get"]["deprecated"] is True
    assert spec["components"]["schemas"]["SubmitResponse"]["properties"]["celery_task_id"]["deprecated"] is True
