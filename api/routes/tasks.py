"""A run found by its broker message id: what the old ``/celery/task/{id}`` answered."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import NotFound

from ..routing import RouteTable
from ..schemas import TaskView, respond
from ..services import services

__all__ = ["TaskNotFound", "routes"]

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
