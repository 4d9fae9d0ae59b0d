"""Run lifecycle operations the API and the CLI share: cancel, retry, delete.

Each is one store write (the state machine decides); these functions only
turn a refusal into the right error and tidy up files.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from .dispatch import Dispatcher, Submission, submit
from .errors import InvalidTransition, ResultNotFound, RunNotFound
from .models import Run
from .paths import RESULT_FILES, run_dir
from .states import RunStatus
from .store.base import Store

__all__ = ["RETRYABLE", "cancel", "delete", "result_file", "retry"]

#: statuses a run may be retried from (as a new run)
RETRYABLE = frozenset({RunStatus.FAILURE, RunStatus.REVOKED})

def _get(store: Store, run_id: str) -> Run:
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def cancel(store: Store, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run:
    """PENDING or STARTED → REVOKED at once. A running generation is interrupted
    by its worker's heartbeat within two heartbeat intervals.

    Raises:
      RunNotFound
      InvalidTransition: the run is already terminal.
    """
    revoked = store.cancel(run_id, now=now, reason=reason)
    if revoked is None:
        run = _get(store, run_id)
        raise InvalidTransition(f"cannot cancel: run is already {run.status}", run_id=run_id, status=str(run.status))
    return revoked


def retry(
    store: Store,
    dispatcher: Dispatcher,
    run_id: str,
    *,
    now: datetime,
    idempotency_key: str | None = None,
) -> Submission:
    """Submit a new run with the same request as a FAILURE or REVOKED one
    (``retry_of`` names the original, which is left as it is).

    Raises:
      RunNotFound
      InvalidTransition: the run is not FAILURE or REVOKED.
      InvalidInput: a profile or source it names no longer exists.
    """
    run = _get(store, run_id)
    if run.status not in RETRYABLE:
        raise InvalidTransition(
            f"cannot retry: run is {run.status} (only FAILURE or REVOKED runs are retried)",
            run_id=run_id,
            status=str(run.status),
        )
    return submit(store, dispatcher, run.request, now=now, idempotency_key=idempotency_key, retry_of=run_id)


def delete(store: Store, run_id: str, *, data_dir: Path) -> None:
    """Delete the run's record and its files under ``podcasts/<run_id>/``.

    Raises:
      RunNotFound
      InvalidTransition: the run is STARTED (cancel it first).
    """
    run = _get(store, run_id)
    if run.status is RunStatus.STARTED or not store.delete_run(run_id):
        current = store.get_run(run_id)
        if current is None:
            raise RunNotFound(run_id)
        raise InvalidTransition(
            f"cannot delete: run is {current.status}; cancel it first", run_id=run_id, status=str(current.status)
        )
    shutil.rmtree(run_dir(data_dir, run_id), ignore_errors=True)


def result_file(run: Run, name: str, *, data_dir: Path) -> Path:
    """The absolute path of a SUCCESS run's result file ``name`` (a key of :data:`~podflow.paths.RESULT_FILES`).

    The stored path is relative to ``data_dir``; one that resolves outside it
    (a tampered record, a symlink) is refused as if absent.

    Raises:
      ResultNotFound: the run is not SUCCESS, produced no such file, or the
        file is missing from disk.
    """
    if run.status is not RunStatus.SUCCESS or run.result is None:
        raise ResultNotFound(run.run_id, name, f"the run is {run.status}")
    relative = getattr(run.result, RESULT_FILES[name])
    if not relative:
        raise ResultNotFound(run.run_id, name, "the generator produced none")
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ResultNotFound(run.run_id, name, "the file is missing from the data directory")
    return path
