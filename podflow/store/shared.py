"""What every backend does the same way, written once over a few primitives.

A backend subclasses :class:`WriteStore` and renders :mod:`podflow.store.transitions`
through two primitives, ``_write_one`` and ``_write_many``; the execution and
sweep methods of the :class:`~podflow.store.base.Store` protocol, the "fenced
write, then read the lease on a miss" replies, and the listing cursor live
here and only here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from ..models import ErrorInfo, Lease, Progress, Run, RunPage, RunRef, RunResult, WebhookDelivery
from ..states import RunStatus
from . import expressions as e
from . import transitions as t
from .base import DEFAULT_BATCH, Claimed, RunFilter, decode_cursor, encode_cursor, finish_status, lease_of

__all__ = ["OWNED", "PAGE_START", "WriteStore"]

#: the reply to a fenced write that matched
OWNED = Lease(owned=True, status=RunStatus.STARTED)
#: the cursor of a first page (``_page``): before every run
PAGE_START = (datetime(1970, 1, 1, tzinfo=UTC), "")

#: history reasons written by the store itself
_LOST_REASON = "lost: heartbeat stale"


class WriteStore(ABC):
    """The Store protocol's execution, sweep and listing methods, over primitives.

    Subclasses set ``heartbeat_timeout_s`` and ``max_attempts`` and implement
    the abstract methods below.
    """

    heartbeat_timeout_s: float
    max_attempts: int

    def deferred_sync(self) -> AbstractContextManager[None]:
        """Nothing to defer: a commit is durable when it returns (see :class:`~podflow.store.base.Store`)."""
        return nullcontext()

    # -- primitives ------------------------------------------------------------------
    @abstractmethod
    def _write_one(self, write: t.Write, args: Mapping[str, Any]) -> Any:
        """Apply ``write`` to the run ``args["run_id"]``: what ``write.returning``
        names (True for NOTHING), or None when the precondition refused it."""

    @abstractmethod
    def _write_many(self, write: t.Write, args: Mapping[str, Any], limit: int) -> list[Any]:
        """Apply the bulk ``write`` to at most ``limit`` matching runs; what it returns for each."""

    @abstractmethod
    def _lease_rows(self, run_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """status, attempt and released of each run that exists, by run_id."""

    @abstractmethod
    def _beat(
        self, leases: Mapping[str, int], progress: Mapping[str, Progress], *, now: datetime
    ) -> tuple[set[str], dict[str, Mapping[str, Any]] | None]:
        """:data:`transitions.HEARTBEAT` for many runs at once, :data:`transitions.PROGRESS`
        for those in ``progress``, in a bounded number of statements (not one per
        run): the run_ids it wrote, and the lease rows (:meth:`_lease_rows`) of the
        others if it read them already (None: :meth:`heartbeat_many` reads them)."""

    @abstractmethod
    def _pending_before(self, column: str, cutoff: datetime, limit: int) -> list[RunRef]:
        """PENDING runs whose ``column`` (outbox_at) is before ``cutoff``, oldest first."""

    @abstractmethod
    def _page(
        self, where: e.Cond, order: str, args: Mapping[str, Any], after: tuple[datetime, str], limit: int
    ) -> list[RunRef]:
        """Up to ``limit`` runs matching ``where`` (with ``args``), as RunRefs with
        ``order`` (a time field) as ``waiting_since``, in (order, run_id) order
        strictly after ``after``."""

    @abstractmethod
    def _runs_page(self, where: RunFilter, after: tuple[datetime, str] | None, limit: int) -> list[Run]:
        """Up to ``limit`` runs ``where`` keeps, newest first (created_at, run_id), strictly after ``after``."""

    # -- listing -----------------------------------------------------------------------
    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        where: RunFilter | None = None,
    ) -> RunPage:
        after = decode_cursor(cursor) if cursor else None
        runs = self._runs_page((where or RunFilter()).with_status(status), after, limit + 1)
        shown = runs[:limit]
        more = len(runs) > limit
        return RunPage(runs=shown, next_cursor=encode_cursor(shown[-1].created_at, shown[-1].run_id) if more else None)

    # -- execution ---------------------------------------------------------------------
    def _claim_args(self, run_id: str, now: datetime) -> dict[str, Any]:
        """The arguments of :data:`transitions.CLAIM` (and ``CLAIM_RUN``)."""
        return {
            "run_id": run_id,
            "now": now,
            "max_attempts": self.max_attempts,
            "stale_before": now - timedelta(seconds=self.heartbeat_timeout_s),
        }

    def claim(self, run_id: str, *, now: datetime) -> int | None:
        attempt = self._write_one(t.CLAIM, self._claim_args(run_id, now))
        return None if attempt is None else int(attempt)

    @abstractmethod
    def claim_execution(self, run_id: str, *, now: datetime) -> Claimed | None:
        """:data:`transitions.CLAIM_RUN`, with the profiles and sources the run names."""

    # -- dispatch bookkeeping ------------------------------------------------------------
    @abstractmethod
    def mark_enqueued_many(self, sent: Mapping[str, str | None], *, now: datetime) -> int: ...

    def mark_enqueued(self, run_id: str, *, now: datetime) -> bool:
        return self.mark_enqueued_many({run_id: None}, now=now) == 1

    def _fenced(self, write: t.Write, run_id: str, attempt: int, **args: Any) -> Lease:
        if self._write_one(write, {"run_id": run_id, "attempt": attempt, **args}) is not None:
            return OWNED
        return self.lease(run_id, attempt)

    def heartbeat(self, run_id: str, attempt: int, *, now: datetime) -> Lease:
        return self._fenced(t.HEARTBEAT, run_id, attempt, now=now)

    def set_progress(self, run_id: str, attempt: int, progress: Progress, *, now: datetime) -> Lease:
        return self._fenced(t.PROGRESS, run_id, attempt, now=now, progress=progress)

    def lease(self, run_id: str, attempt: int) -> Lease:
        return lease_of(self._lease_rows([run_id]).get(run_id), attempt)

    def heartbeat_many(
        self, leases: Mapping[str, int], *, now: datetime, progress: Mapping[str, Progress] | None = None
    ) -> dict[str, Lease]:
        if not leases:
            return {}
        owned, rows = self._beat(leases, {r: p for r, p in (progress or {}).items() if r in leases}, now=now)
        missed = [run_id for run_id in leases if run_id not in owned]
        if rows is None:
            rows = self._lease_rows(missed) if missed else {}
        return {
            run_id: OWNED if run_id in owned else lease_of(rows.get(run_id), attempt)
            for run_id, attempt in leases.items()
        }

    def release(
        self,
        run_id: str,
        attempt: int,
        *,
        error: ErrorInfo | None,
        now: datetime,
        reason: str | None = None,
        counted: bool = True,
    ) -> bool:
        args = {"run_id": run_id, "attempt": attempt, "now": now, "error": error}
        reason = reason or f"released for retry: {error.type if error else 'unknown'}"
        write = t.RELEASE if counted else t.RELEASE_STOPPED
        return self._write_one(write, {**args, "reason": reason}) is not None

    def redispatch(
        self, run_id: str, *, message_id: str | None, now: datetime, reason: str, outbox_at: datetime | None = None
    ) -> bool:
        args = {"run_id": run_id, "message_id": message_id, "now": now, "reason": reason, "outbox_at": outbox_at or now}
        return self._write_one(t.REDISPATCH, args) is not None

    def finish(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        now: datetime,
        result: RunResult | None = None,
        error: ErrorInfo | None = None,
        reason: str = "",
    ) -> Run | None:
        status = finish_status(status)
        args = _finish_args(run_id, attempt, status, now, result, error, reason)
        run: Run | None = self._write_one(t.FINISH[status], args)
        return run

    def finish_attempt(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        now: datetime,
        result: RunResult | None = None,
        error: ErrorInfo | None = None,
        reason: str = "",
    ) -> bool:
        status = finish_status(status)
        args = _finish_args(run_id, attempt, status, now, result, error, reason)
        return self._write_one(t.FINISH_ATTEMPT[status], args) is not None

    def cancel(self, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run | None:
        error = ErrorInfo(type="revoked", message=reason)
        run: Run | None = self._write_one(t.CANCEL, {"run_id": run_id, "now": now, "error": error, "reason": reason})
        return run

    # -- sweep ---------------------------------------------------------------------------
    def list_outbox(self, *, requested_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        return self._pending_before("outbox_at", requested_before, limit)

    def list_awaiting(
        self,
        *,
        status: RunStatus,
        before: datetime,
        after: tuple[datetime, str] | None = None,
        limit: int = DEFAULT_BATCH,
    ) -> list[RunRef]:
        status = RunStatus(status)
        where, order = t.AWAITING[status], t.AWAITING_SINCE[status]
        return self._page(where, order, {"cutoff": before}, after or PAGE_START, limit)

    def _fail(self, write: t.Write, cutoff: datetime, error: ErrorInfo, now: datetime, limit: int) -> list[str]:
        args = {"cutoff": cutoff, "now": now, "error": error, "reason": error.type, "max_attempts": self.max_attempts}
        return [str(run_id) for run_id in self._write_many(write, args, limit)]

    def fail_started_before(
        self, *, started_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail(t.TIME_LIMIT, started_before, error, now, limit)

    def fail_lost(
        self, *, heartbeat_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail(t.WORKER_LOST, heartbeat_before, error, now, limit)

    def fail_pending_enqueued_before(
        self, *, enqueued_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail(t.EXPIRED, enqueued_before, error, now, limit)

    def release_lost(self, *, heartbeat_before: datetime, now: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        args = {"cutoff": heartbeat_before, "now": now, "max_attempts": self.max_attempts, "reason": _LOST_REASON}
        return list(self._write_many(t.RELEASE_LOST, args, limit))

    # -- completion webhooks -----------------------------------------------------------
    def claim_webhooks(self, *, now: datetime, lease_until: datetime, limit: int = DEFAULT_BATCH) -> list[Run]:
        args = {"due_before": now, "lease_until": lease_until}
        return list(self._write_many(t.WEBHOOK_CLAIM, args, limit))

    def record_webhook(
        self, run_id: str, attempt: int, *, delivery: WebhookDelivery, next_at: datetime | None
    ) -> bool:
        args = {"run_id": run_id, "webhook_attempt": attempt, "delivery": delivery, "next_at": next_at}
        return self._write_one(t.WEBHOOK_OUTCOME, args) is not None


def _finish_args(
    run_id: str,
    attempt: int,
    status: RunStatus,
    now: datetime,
    result: RunResult | None,
    error: ErrorInfo | None,
    reason: str,
) -> dict[str, Any]:
    return {
        "run_id": run_id, "attempt": attempt, "now": now, "result": result, "error": error,
        "reason": reason or status.lower(),
    }
