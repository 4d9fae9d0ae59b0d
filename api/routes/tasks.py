"""A run found by its broker message id: what the old ``/celery/task/{id}`` answered.

``GET /api/podcast/tasks/{message_id}`` is podflow's own route;
``GET /api/podcast/celery/task/{celery_task_id}`` is the old module's, kept as a
deprecated alias that answers in the old shape (README, "Migrating from the
Celery module"), with ``Deprecation`` and a ``Link`` to its successor.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import NotFound

from ..routing import RouteTable
from ..schemas import CeleryTaskView, TaskView, respond
from ..services import services

__all__ = ["DEPRECATED_SINCE", "TaskNotFound", "routes"]

#: when the old routes were deprecated (the ``Deprecation`` header, RFC 9745: seconds since the epoch)
DEPRECATED_SINCE = 1764547200  # 2025-12-01

routes = RouteTable("tasks")


class TaskNotFound(NotFound):
    kind = "task"


@routes.get("/api/podcast/tasks/{message_id}", {200: TaskView}, name="get_task")
def get_task(request: Request, message_id: str) -> Response:
    """The run a broker message id belongs to (the old `/celery/task/{id}`).

    `ready` once the run is finished, `successful` when it is SUCCESS, with its
    `result` (file URLs) or its `error`. An unknown id is a 404, never a fake PENDING.
    """
    run = services(request).store.get_run_by_message_id(message_id)
    if run is None:
        raise TaskNotFound(message_id)
    return respond(TaskView.of(message_id, run, request))


@routes.get(
    "/api/podcast/celery/task/{celery_task_id}", {200: CeleryTaskView}, name="get_celery_task", deprecated=True
)
def get_celery_task(request: Request, celery_task_id: str) -> Response:
    """The old module's task route (deprecated: use GET /api/podcast/runs/{run_id}).

    `{celery_task_id, status, ready, successful, result}`, read from the store:
    `celery_task_id` is the `celery_task_id` (= `message_id`) the generate
    response carried. An unknown id is a 404, where Celery answered PENDING.
    """
    run = services(request).store.get_run_by_message_id(celery_task_id)
    if run is None:
        raise TaskNotFound(celery_task_id)
    successor = request.app.url_path_for("get_run", run_id=run.run_id)
    headers = {"Deprecation": f"@{DEPRECATED_SINCE}", "Link": f'<{successor}>; rel="successor-version"'}
    return respond(CeleryTaskView.of(celery_task_id, run, request), headers=headers)
