"""The sweep: what crashes, lost messages and forgotten runs leave behind.

Rules, in order, each an index-backed store operation looped over batches, so
its cost follows the number of matching runs:

1. ``time_limit``   STARTED longer than PODFLOW_TIME_LIMIT since ``started_at``
   → FAILURE ``time_limit`` (fencing rejects any late write of that attempt);
2. ``worker_lost``  held by an attempt silent past PODFLOW_HEARTBEAT_TIMEOUT, no
   attempts left → FAILURE ``worker_lost``;
3. ``redispatched`` held by an attempt silent that long, attempts left →
   released, once per loss (history ``lost: heartbeat stale``): any delivery of
   the run may claim it now. First the broker is asked to hand the messages of
   the workers it counts dead back to their queue (on Redis, Dramatiq's own
   maintenance, run now instead of by chance), so the lost worker's message
   delivers the run again, once, after the runs queued ahead of it;
4. ``enqueued``     PENDING, start requested more than ``outbox_grace_s`` ago and
   never confirmed (the broker was down, or the API died between insert and
   send) → sent and marked enqueued; only marked if the broker already holds its
   message. The grace keeps the sweep from racing a submit that is still sending.
   A run scheduled beyond PODFLOW_SCHEDULE_HORIZON waits here by design: its
   ``outbox_at`` is the horizon before its start, so this rule sends it then,
   delayed until its start (:func:`~podflow.dispatch.outbox.hand_over_at`);
5. ``requeued``     waiting for its message -- PENDING and enqueued, or STARTED
   and released, for longer than PODFLOW_HEARTBEAT_TIMEOUT, or released by rule 3
   just now -- while the broker holds that message nowhere (not ready, not
   delayed for a retry, not fetched by a live or dead worker: Redis restarted
   without persistence, a flushed or dead-lettered message) → sent again under
   a new message id, recorded first (history ``re-sent: ...``), on its own
   band's queue and, scheduled, still delayed until its start (or, scheduled
   beyond the horizon, put back in the outbox for rule 4). Decided per run,
   whatever else is queued, with one broker read per sweep
   (:meth:`~podflow.dispatch.Dispatcher.missing`). A run whose message is still
   held is left alone however long it waits: a backlog is not a loss, and a
   retry's backoff is the retry's;
6. ``expired``      PENDING, its message enqueued but not started within
   PODFLOW_PENDING_TIMEOUT → FAILURE ``expired`` (a re-sent run counts from its
   new message, a scheduled run from its ``start_at``). Skipped by a sweep that could not ask the broker about lost
   messages: a run may be lost there, not stuck, and rule 5 comes first.
7. ``checkpoints``  checkpoint directories (``PODFLOW_DATA_DIR/checkpoints/``)
   of runs that are gone, SUCCESS (left by a crash after the finish), or
   FAILURE/REVOKED for longer than PODFLOW_CHECKPOINT_TTL → removed. A file
   rule, not a store write: one directory listing and a run read per run that
   has checkpoints (running runs, and failed ones within the TTL).
8. ``deleted``      retention (PODFLOW_RETENTION_DAYS, 0 = keep forever): SUCCESS,
   FAILURE and REVOKED runs finished longer ago than that → deleted with their
   result files and checkpoints (:func:`podflow.deletion.delete_ended`: files
   first, then the rows). Oldest first, read off the finished_at index in
   batches of ``batch``, at most ``retention_cap`` runs per sweep, so a first
   sweep over years of runs never stalls the others: the next sweeps carry on.
   The counters are not lowered (``/metrics`` counts runs ever finished), and
   ``swept:deleted`` counts the deletions.

Without a dispatcher only the failing rules (1, 2, 6), 7 and 8 run: that is what a
scheduler process does in thread mode, where the API process dispatches.
Dispatch rules only send runs of the dispatcher's own mode. Where the broker
cannot be asked about one message (RabbitMQ: ``missing`` is None), rule 5 sends
nothing: RabbitMQ keeps durable queues over a restart and redelivers a dead
consumer's messages itself, and a run whose message was purged there ends
``expired`` (PENDING) or ``time_limit`` (released).

"Stale" is the store's own ``heartbeat_timeout_s`` (PODFLOW_HEARTBEAT_TIMEOUT),
the one that also lets a redelivered message re-claim a silent run: the sweep
and the claim can never disagree on when a worker is lost.

Each sweep adds its report to the store's counters (``record_sweep``), for
``/metrics`` and the dashboard. Every rule is a conditional write, so two
sweeps at once do no harm; :func:`locked_sweep` still keeps two schedulers
from sweeping at the same moment with a short store lease. Time is the
``now`` argument.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoints import is_removable, remove_checkpoints
from ..deletion import delete_ended
from ..dispatch import Dispatcher
from ..dispatch.outbox import deliver, resend
from ..errors import BrokerUnavailable
from ..models import ErrorInfo, RunRef
from ..paths import checkpoint_runs
from ..settings import OUTBOX_GRACE_S
from ..states import RunStatus
from ..store.base import DEFAULT_BATCH, Store
from ..timeutil import seconds

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "DEFAULT_RETENTION_CAP",
    "RESENT_REASON",
    "SWEEP_LEASE",
    "SweepPolicy",
    "SweepReport",
    "locked_sweep",
    "sweep",
]

log = logging.getLogger(__name__)

#: the most runs one sweep deletes by retention: ten batches
DEFAULT_RETENTION_CAP = 10 * DEFAULT_BATCH
#: the store lease that serializes schedulers
SWEEP_LEASE = "sweep"
#: the history reason of a run sent again because the broker lost its message
RESENT_REASON = "re-sent: the broker no longer held its message"


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    """The limits the sweep enforces (from the settings, see :meth:`from_settings`).

    The heartbeat timeout is not one of them: it is the store's
    (``Store.heartbeat_timeout_s``), so the sweep and the claim share one value.
    """

    time_limit_s: float
    pending_timeout_s: float
    #: a run in the outbox younger than this may still be being sent by its submitter
    outbox_grace_s: float = OUTBOX_GRACE_S
    batch: int = DEFAULT_BATCH
    #: PODFLOW_SCHEDULE_HORIZON: a lost message of a run scheduled further ahead is not
    #: re-sent, but recorded in the outbox until then (None: always re-sent at once)
    schedule_horizon_s: float | None = None
    #: PODFLOW_DATA_DIR, where the checkpoints are (None: the checkpoints rule does nothing)
    data_dir: Path | None = None
    #: PODFLOW_CHECKPOINT_TTL: how long a FAILURE or REVOKED run's checkpoints stay
    checkpoint_ttl_s: float = 7 * 86400.0
    #: PODFLOW_RETENTION_DAYS in seconds: ended runs older than this are deleted (0: kept forever)
    retention_s: float = 0.0
    #: the most runs one sweep deletes (the rest wait for the next sweeps)
    retention_cap: int = DEFAULT_RETENTION_CAP

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float) -> SweepPolicy:
        values = {
            "time_limit_s": settings.time_limit_s,
            "pending_timeout_s": settings.pending_timeout_s,
            "data_dir": settings.data_dir,
            "checkpoint_ttl_s": settings.checkpoint_ttl_s,
            "retention_s": settings.retention_days * 86400.0,
            "schedule_horizon_s": settings.schedule_horizon_s,
            **overrides,
        }
        return cls(**values)  # type: ignore[arg-type]


@dataclass(slots=True)
class SweepReport:
    """How many runs each rule touched."""

    time_limit: int = 0
    worker_lost: int = 0
    redispatched: int = 0
    enqueued: int = 0
    requeued: int = 0
    expired: int = 0
    #: runs whose checkpoints were removed
    checkpoints: int = 0
    #: ended runs deleted by retention, with their files
    deleted: int = 0
    #: sends that failed (the broker is down); retried by the next sweep
    send_errors: int = 0

    @property
    def total(self) -> int:
        return (
            self.time_limit + self.worker_lost + self.redispatched + self.enqueued + self.requeued + self.expired
            + self.checkpoints + self.deleted
        )  # fmt: skip

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(store: Store, *, now: datetime, policy: SweepPolicy, dispatcher: Dispatcher | None = None) -> SweepReport:
    """Apply every rule once, in order. Idempotent.

    Raises:
      StoreUnavailable: the store cannot be reached (the counts so far are lost;
        the next sweep starts over).
    """
    report = SweepReport()
    heartbeat_timeout_s = store.heartbeat_timeout_s
    stale = now - seconds(heartbeat_timeout_s)

    def fail_all(operation: Callable[..., Sized], error: ErrorInfo, **cutoff: datetime) -> int:
        """Run a failing bulk operation over every batch; how many runs it failed."""
        total = 0
        while True:
            failed = operation(error=error, now=now, limit=policy.batch, **cutoff)
            total += len(failed)
            if len(failed) < policy.batch:
                return total

    report.time_limit = fail_all(
        store.fail_started_before,
        ErrorInfo(type="time_limit", message=f"running longer than {policy.time_limit_s:g} s"),
        started_before=now - seconds(policy.time_limit_s),
    )
    report.worker_lost = fail_all(
        store.fail_lost,
        ErrorInfo(type="worker_lost", message=f"no heartbeat for {heartbeat_timeout_s:g} s, no attempts left"),
        heartbeat_before=stale,
    )
    checked = True  # whether every run waiting for a message could be looked up
    if dispatcher is not None:
        released = _release_lost(store, dispatcher, now=now, stale=stale, policy=policy, report=report)
        _send_outbox(store, dispatcher, now=now, policy=policy, report=report)
        checked = _resend_lost(store, dispatcher, released, now=now, policy=policy, report=report)
    if checked:
        report.expired = fail_all(
            store.fail_pending_enqueued_before,
            ErrorInfo(type="expired", message=f"not started within {policy.pending_timeout_s:g} s"),
            enqueued_before=now - seconds(policy.pending_timeout_s),
        )
    else:
        log.warning("sweep: expiry skipped: the broker could not be asked which messages it lost")
    report.checkpoints = _expire_checkpoints(store, now=now, policy=policy)
    report.deleted = _delete_expired(store, now=now, policy=policy)
    # for /metrics and the dashboard: sweeps counted, and when the last one ran
    store.record_sweep(report.as_dict(), now=now)
    # callers log the outcome (the scheduler one line per sweep)
    log.debug("sweep: %s", report.as_dict())
    return report


def _release_lost(
    store: Store, dispatcher: Dispatcher, *, now: datetime, stale: datetime, policy: SweepPolicy, report: SweepReport
) -> list[RunRef]:
    """Rule 3: release the runs of silent attempts; the ones of the dispatcher's mode."""
    try:  # the dead workers' messages back on the queue first: they deliver the runs released now
        dispatcher.requeue_orphans()
    except BrokerUnavailable as exc:
        log.warning("sweep: cannot requeue the messages of dead workers: %s", exc)
    released: list[RunRef] = []
    # each call releases what it returns, and a released run is never released again
    while True:
        refs = store.release_lost(heartbeat_before=stale, now=now, limit=policy.batch)
        released += [ref for ref in refs if ref.mode == dispatcher.mode]
        if len(refs) < policy.batch:
            break
    report.redispatched = len(released)
    return released


def _send_outbox(
    store: Store, dispatcher: Dispatcher, *, now: datetime, policy: SweepPolicy, report: SweepReport
) -> None:
    """Rule 4: send what the outbox holds, unless the broker holds it already."""
    requested_before = now - seconds(policy.outbox_grace_s)
    while True:
        refs = store.list_outbox(requested_before=requested_before, limit=policy.batch)
        mine = [ref for ref in refs if ref.mode == dispatcher.mode]
        held: set[str] = set()
        if mine and dispatcher.durable:  # sent before, but the enqueue was never marked?
            with contextlib.suppress(BrokerUnavailable):  # then the send fails too, and says so
                missing = dispatcher.missing(mine)
                held = set() if missing is None else {ref.run_id for ref in mine} - missing
        progressed = False
        if held:  # their confirmations, in one write
            store.mark_enqueued_many({r.run_id: r.current_message_id for r in mine if r.run_id in held}, now=now)
            report.enqueued += len(held)
            progressed = True
        for ref in mine:
            if ref.run_id in held:
                continue
            if deliver(
                store,
                dispatcher,
                ref.run_id,
                ref.current_message_id or ref.message_id,
                now=now,
                priority=ref.priority,
                start_at=ref.start_at,
            ):
                report.send_errors += 1
                return  # the broker is down: leave the rest for the next sweep
            report.enqueued += 1
            progressed = dispatcher.durable
        # a non-durable dispatcher leaves the marker in place, and runs of the
        # other mode stay listed: only a full, progressing batch asks for more
        if len(refs) < policy.batch or not progressed:
            return


def _resend_lost(
    store: Store,
    dispatcher: Dispatcher,
    released: list[RunRef],
    *,
    now: datetime,
    policy: SweepPolicy,
    report: SweepReport,
) -> bool:
    """Rule 5: re-send the runs waiting for a message the broker no longer holds.
    False when the broker could not be asked (or refused a send)."""
    candidates = {ref.run_id: ref for ref in released}
    waiting_since = now - seconds(store.heartbeat_timeout_s)
    for status in (RunStatus.PENDING, RunStatus.STARTED):  # the store read in pages; the broker asked once
        after: tuple[datetime, str] | None = None
        while True:
            page = store.list_awaiting(status=status, before=waiting_since, after=after, limit=policy.batch)
            candidates.update((ref.run_id, ref) for ref in page if ref.mode == dispatcher.mode)
            if len(page) < policy.batch:
                break
            last = page[-1]
            assert last.waiting_since is not None  # list_awaiting sets it
            after = (last.waiting_since, last.run_id)
    if not candidates:
        return True
    try:
        missing = dispatcher.missing(list(candidates.values()))
    except BrokerUnavailable as exc:  # nothing was sent; the next sweep looks again
        log.warning("sweep: cannot ask the broker for lost messages: %s", exc)
        return False
    if missing is None:  # the broker cannot tell (RabbitMQ): it keeps and redelivers its messages itself
        return True
    for ref in candidates.values():
        if ref.run_id not in missing:
            continue  # still held: ready, delayed or fetched; its delivery comes
        outcome = resend(store, dispatcher, ref, now=now, reason=RESENT_REASON, horizon_s=policy.schedule_horizon_s)
        if outcome == "unsent":  # recorded, in the outbox: the next sweep sends it
            report.send_errors += 1
            return False
        if outcome in ("sent", "held"):  # held: in the outbox again, which sends it before its start
            log.debug("run %s: re-sent: the broker no longer held message %s", ref.run_id, ref.current_message_id)
            report.requeued += 1
    return True


def _expire_checkpoints(store: Store, *, now: datetime, policy: SweepPolicy) -> int:
    """Remove the checkpoints no retry can use any more (:func:`podflow.checkpoints.is_removable`);
    how many runs' directories went."""
    if policy.data_dir is None:
        return 0
    removed = 0
    for run_id, _ in checkpoint_runs(policy.data_dir):
        if is_removable(store.get_run(run_id), now=now, ttl_s=policy.checkpoint_ttl_s):
            removed += remove_checkpoints(policy.data_dir, run_id)
    return removed


def _delete_expired(store: Store, *, now: datetime, policy: SweepPolicy) -> int:
    """Rule 8: delete the ended runs past retention, with their files, oldest first,
    at most ``retention_cap``; how many were deleted. Nothing without a data
    directory: rows deleted without their files would leave the files orphaned."""
    if policy.retention_s <= 0 or policy.data_dir is None:
        return 0
    cutoff = now - seconds(policy.retention_s)
    deleted = 0
    while deleted < policy.retention_cap:
        limit = min(policy.batch, policy.retention_cap - deleted)
        run_ids = store.list_ended_before(finished_before=cutoff, limit=limit)
        gone = delete_ended(store, run_ids, data_dir=policy.data_dir)
        deleted += len(gone)
        if len(run_ids) < limit or not gone:  # the last batch (or one another deleter took)
            break
    return deleted


def locked_sweep(
    store: Store,
    *,
    now: datetime,
    policy: SweepPolicy,
    holder: str,
    dispatcher: Dispatcher | None = None,
    ttl_s: float = 120.0,
) -> SweepReport | None:
    """:func:`sweep` under the store lease ``sweep``; None if another holder has it."""
    if not store.acquire_lease(SWEEP_LEASE, holder=holder, now=now, ttl_s=ttl_s):
        log.info("sweep skipped: another scheduler holds the lease")
        return None
    try:
        return sweep(store, now=now, policy=policy, dispatcher=dispatcher)
    finally:
        store.release_lease(SWEEP_LEASE, holder=holder)
