"""A run seen through its broker message id (the old /celery/task/{id})."""

from __future__ import annotations

from podflow.models import ErrorInfo
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from tests.api.conftest import Api, error, finish_with_files


def test_a_task_shows_its_run_until_it_is_ready_and_then_its_result(api: Api) -> None:
    submitted = api.submit()
    url = f"/api/podcast/tasks/{submitted['message_id']}"
    pending = api.client.get(url).json()
    assert pending == {
        "message_id": submitted["message_id"],
        "run_id": submitted["run_id"],
        "status": "PENDING",
        "ready": False,
        "successful": False,
        "result": None,
        "error": None,
    }
    finish_with_files(api, submitted["run_id"], audio="")
    done = api.client.get(url).json()
    assert (done["status"], done["ready"], done["successful"]) == ("SUCCESS", True, True)
    assert done["result"]["audio_url"] == f"/api/podcast/runs/{submitted['run_id']}/audio"


def test_a_failed_task_shows_its_error(api: Api) -> None:
    submitted = api.submit()
    attempt = api.store.claim(submitted["run_id"], now=utcnow())
    boom = ErrorInfo(type="ValueError", message="boom")
    api.store.finish(submitted["run_id"], attempt, status=RunStatus.FAILURE, now=utcnow(), error=boom)
    failed = api.client.get(f"/api/podcast/tasks/{submitted['message_id']}").json()
    assert (failed["ready"], failed["successful"], failed["result"]) == (True, False, None)
    assert failed["error"] == {"type": "ValueError", "message": "boom"}


def test_an_unknown_message_id_is_a_404_never_a_fake_pending(api: Api) -> None:
    assert "task 'nope' not found" in error(api.client.get("/api/podcast/tasks/nope"), 404, "not_found")["message"]
