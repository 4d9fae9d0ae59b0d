"""The sweep: what crashes, lost messages and forgotten runs leave behind.

Rules, in order, each an index-backed bulk store operation looped over
batches, so its cost follows the number of matching runs:

1. ``time_limit``  STARTED longer than PODFLOW_TIME_LIMIT since ``started_at``
   → FAILURE ``time_limit`` (fencing rejects any late write of that attempt);
2. ``worker_lost`` heartbeat older than PODFLOW_HEARTBEAT_TIMEOUT, no attempts
   left → FAILURE ``worker_lost``;
3. ``redispatched`` heartbeat stale, attempts left → released and sent again
   under a new message id (dispatch rule);
4. ``enqueued``    PENDING, start requested more than ``outbox_grace_s`` ago and
   never confirmed (the broker was down, or the API died between insert and
   send) → sent, marked enqueued (dispatch rule). The grace keeps the sweep
   from racing a submit that is still sending;
5. ``requeued``    PENDING, enqueued more than PODFLOW_HEARTBEAT_TIMEOUT ago,
   while the broker holds no message of the queue at all (ready, delayed or
   fetched): the message was lost (a broker restarted without persistence, a
   dead-lettered message) → sent again (dispatch rule; Redis only, as
   RabbitMQ does not count unacknowledged messages);
6. ``expired``     PENDING, enqueued but not started within
   PODFLOW_PENDING_TIMEOUT → FAILURE ``expired``;
7. ``checkpoints`` checkpoint directories (``PODFLOW_DATA_DIR/checkpoints/``)
   of runs that are gone, SUCCESS (left by a crash after the finish), or
   FAILURE/REVOKED for longer than PODFLOW_CHECKPOINT_TTL → removed. A file
   rule, not a store write: one directory listing and a run read per run that
   has checkpoints (running runs, and failed ones within the TTL).

Without a dispatcher only the failing rules (1, 2, 6) and 7 run: that is what a
scheduler process does in thread mode, where the API process dispatches.
Dispatch rules only send runs of the dispatcher's own mode.

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

import logging
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoints import is_removable, remove_checkpoints
from ..dispatch import Dispatcher
from ..dispatch.outbox import deliver, redispatch
from ..errors import BrokerUnavailable
from ..logs import run_fields
from ..models import ErrorInfo
from ..paths import checkpoint_runs
from ..store.base import DEFAULT_BATCH, Store
from ..timeutil import seconds

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["SWEEP_LEASE", "SweepPolicy", "SweepReport", "locked_sweep", "sweep"]

log = logging.getLogger(__name__)

#: the store lease that serializes schedulers
SWEEP_LEASE = "sweep"


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    """The limits the sweep enforces (from the settings, see :meth:`from_settings`).

    The heartbeat timeout is not one of them: it is the store's
    (``Store.heartbeat_timeout_s``), so the sweep and the claim share one value.
    """

    time_limit_s: float
    pending_timeout_s: float
    #: a run in the outbox younger than this may still be being sent by its submitter
    outbox_grace_s: float = 10.0
    batch: int = DEFAULT_BATCH
    #: PODFLOW_DATA_DIR, where the checkpoints are (None: the checkpoints rule does nothing)
    data_dir: Path | None = None
    #: PODFLOW_CHECKPOINT_TTL: how long a FAILURE or REVOKED run's checkpoints stay
    checkpoint_ttl_s: float = 7 * 86400.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float) -> SweepPolicy:
        values = {
            "time_limit_s": settings.time_limit_s,
            "pending_timeout_s": settings.pending_timeout_s,
            "data_dir": settings.data_dir,
            "checkpoint_ttl_s": settings.checkpoint_ttl_s,
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
    #: sends that failed (the broker is down); retried by the next sweep
    send_errors: int = 0

    @property
    def total(self) -> int:
        return (
            self.time_limit + self.worker_lost + self.redispatched + self.enqueued + self.requeued + self.expired
            + self.checkpoints
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
    if dispatcher is not None:
        _redispatch_lost(store, dispatcher, now=now, stale=stale, policy=policy, report=report)
        _send_outbox(store, dispatcher, now=now, policy=policy, report=report)
        _requeue_orphans(store, dispatcher, now=now, policy=policy, report=report)
    report.expired = fail_all(
        store.fail_pending_enqueued_before,
        ErrorInfo(type="expired", message=f"not started within {policy.pending_timeout_s:g} s"),
        enqueued_before=now - seconds(policy.pending_timeout_s),
    )
    report.checkpoints = _expire_checkpoints(store, now=now, policy=policy)
    # for /metrics and the dashboard: sweeps counted, and when the last one ran
    store.record_sweep(report.as_dict(), now=now)
    # callers log the outcome (the scheduler one line per sweep)
    log.debug("sweep: %s", report.as_dict())
    return report


def _redispatch_lost(
    store: Store, dispatcher: Dispatcher, *, now: datetime, stale: datetime, policy: SweepPolicy, report: SweepReport
) -> None:
    # each call releases what it returns (heartbeat_at = now), so batches advance
    while True:
        refs = store.release_lost(heartbeat_before=stale, now=now, limit=policy.batch)
        for ref in refs:
            if ref.mode != dispatcher.mode:
                continue  # its own mode's sweep sends it once it is stale again
            try:
                redispatch(dispatcher, ref.run_id)
                report.redispatched += 1
            except BrokerUnavailable as exc:
                # released but unsent: the next sweep after a heartbeat timeout re-sends it
                about = run_fields(ref.run_id, attempt=ref.attempt)
                log.warning("run %s: redispatch failed: %s", ref.run_id, exc, extra=about)
                report.send_errors += 1
        if len(refs) < policy.batch:
            return


def _send_outbox(
    store: Store, dispatcher: Dispatcher, *, now: datetime, policy: SweepPolicy, report: SweepReport
) -> None:
    requested_before = now - seconds(policy.outbox_grace_s)
    while True:
        refs = store.list_outbox(requested_before=requested_before, limit=policy.batch)
        progressed = False
        for ref in refs:
            if ref.mode != dispatcher.mode:
                continue
            error = deliver(store, dispatcher, ref.run_id, ref.message_id, now=now)
            if error is not None:
                report.send_errors += 1
                return  # the broker is down: leave the rest for the next sweep
            report.enqueued += 1
            progressed = dispatcher.durable
        # a non-durable dispatcher leaves the marker in place, and runs of the
        # other mode stay listed: only a full, progressing batch asks for more
        if len(refs) < policy.batch or not progressed:
            return


def _requeue_orphans(
    store: Store, dispatcher: Dispatcher, *, now: datetime, policy: SweepPolicy, report: SweepReport
) -> None:
    """PENDING runs enqueued long ago while the broker holds no message at all
    for the queue: their message was lost (a broker restarted without
    persistence, a dead-lettered message), so send them again. One batch per
    sweep: the re-sent messages fill the queue, and the rule waits until it is
    empty again. ``enqueued_at`` is left alone, so expiry still counts from the
    first enqueue."""
    try:
        if not dispatcher.holds_nothing(now=now):
            return
    except BrokerUnavailable as exc:  # nothing was sent; the next sweep looks again
        log.warning("sweep: cannot inspect the broker for lost messages: %s", exc)
        return
    refs = store.list_enqueued(enqueued_before=now - seconds(store.heartbeat_timeout_s), limit=policy.batch)
    for ref in refs:
        if ref.mode != dispatcher.mode:
            continue
        try:
            redispatch(dispatcher, ref.run_id)
        except BrokerUnavailable as exc:
            log.warning("run %s: re-sending a lost message failed: %s", ref.run_id, exc, extra=run_fields(ref.run_id))
            report.send_errors += 1
            return
        report.requeued += 1


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
