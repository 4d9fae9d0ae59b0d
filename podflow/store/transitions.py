"""Every write that changes a run's status or its lease, each written once, as data.

A :class:`Write` says which runs it may touch (the statuses it leaves, derived
from :data:`podflow.states.TRANSITIONS`, and the fence: the attempt, the
released flag, a heartbeat or start cutoff, the attempts left), what it sets,
and the history entry it appends. Backends render it and nothing else:

- SQL (:mod:`podflow.store.sql`, for SQLite and PostgreSQL): one
  ``UPDATE runs SET <sets>, history = <history + entry> WHERE <status IN (...)
  AND fence> RETURNING ...``; a bulk write selects its batch in a sub-query;
- MongoDB (:mod:`podflow.store.mongo.render`): the same condition as a
  ``find_one_and_update`` filter and ``$set``/``$push`` update. A write whose
  values depend on the row (``attempt + 1``, the history entry's attempt) reads
  the row first and adds the values it read to the filter (compare-and-set).

Expressions read the row as it was *before* the write (SQL's semantics for
``SET`` and MongoDB's compare-and-set alike). Policy (``max_attempts``) and
cutoffs are arguments of the write, never copies of a setting. "Attempts left"
reads ``attempts_counted``, not ``attempt``: ``attempt`` numbers the attempts (the
fence), ``attempts_counted`` counts those that count toward ``max_attempts``; an
attempt released because its worker stopped (a deploy, a scale-down) is no fault
of the run's and is given back.

The table, by target::

    claim            PENDING | STARTED(released or stale, attempts left) -> STARTED, attempt + 1,
                                                                            attempts_counted + 1
    release          STARTED(held by attempt)                            -> STARTED, released
    release:stopped  STARTED(held by attempt): its worker stopped        -> STARTED, released,
                                                                            attempts_counted - 1
    finish:SUCCESS   STARTED(held by attempt)                            -> SUCCESS
    finish:FAILURE   STARTED(held by attempt)                            -> FAILURE
    cancel           PENDING | STARTED                                   -> REVOKED
    time_limit       STARTED, started_at < cutoff                        -> FAILURE
    worker_lost      STARTED, heartbeat_at < cutoff, no attempts left    -> FAILURE
    release_lost     STARTED(not released), heartbeat_at < cutoff,
                     attempts left                                       -> STARTED, released
    expired          PENDING, enqueued_at and start_at (if any) < cutoff -> FAILURE
    redispatch       PENDING(out of the outbox) | STARTED(released):
                     a new current message id, back in the outbox        (no status change)
    heartbeat        STARTED(held by attempt): heartbeat_at              (no status change, no history)
    progress         STARTED(held by attempt): progress, heartbeat_at    (no status change, no history)
    webhook_claim    terminal, webhook_due_at < due_before: the next
                     delivery attempt, leased (due_at = lease_until)     (no status change, no history)
    webhook_outcome  terminal, held by that delivery attempt: its
                     outcome, the next due time (None: done)             (no status change, no history)

Every write that ends a run (finish, cancel and the sweep's failures) also
writes the completion webhook's obligation: ``webhook_due_at = now`` when the
run has a ``callback_url`` -- in the very write that makes it terminal, so no
crash can separate the two (an outbox, as ``outbox_at`` is for starts).

A process's heartbeat round (``Store.heartbeat_many``) renders ``heartbeat`` and
``progress`` together for all its runs: one SQL statement over a batch of
(run_id, attempt, progress) rows (:func:`podflow.store.sql.beat_sql`), one MongoDB
bulk write; each run is still fenced by its own attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from ..states import TERMINAL, RunStatus, allowed_sources
from .expressions import (
    And,
    Case,
    Coalesce,
    Cond,
    Dec,
    Eq,
    Expr,
    Field,
    Ge,
    In,
    Inc,
    Lit,
    Lt,
    Or,
    Param,
    ParamKind,
    Truthy,
    and_,
    fields_of,
    params_of,
)

__all__ = [
    "AWAITING",
    "AWAITING_SINCE",
    "BY_NAME",
    "CANCEL",
    "CLAIM",
    "CLAIM_RUN",
    "EXPIRED",
    "FINISH",
    "FINISH_ATTEMPT",
    "HEARTBEAT",
    "PROGRESS",
    "REDISPATCH",
    "REF_FIELDS",
    "RELEASE",
    "RELEASE_LOST",
    "RELEASE_STOPPED",
    "TIME_LIMIT",
    "WEBHOOK_CLAIM",
    "WEBHOOK_DUE",
    "WEBHOOK_OUTCOME",
    "WORKER_LOST",
    "WRITES",
    "Entry",
    "Returning",
    "Write",
]


# -- writes ----------------------------------------------------------------------------


class Returning(Enum):
    """What a write gives back for each run it changed."""

    NOTHING = "nothing"  # a flag: written or not
    ATTEMPT = "attempt"  # the new attempt
    REF = "ref"  # a RunRef (run_id, attempt, mode, message_id)
    RUN_ID = "run_id"
    RUN = "run"  # the whole run, after the write


#: the run's fields in a REF (a :class:`~podflow.models.RunRef`)
REF_FIELDS = ("run_id", "attempt", "mode", "message_id", "current_message_id", "priority", "start_at")


@dataclass(frozen=True, slots=True)
class Entry:
    """The history entry a write appends: {status, at: now, attempt, reason}
    (``status`` a Field for a write that keeps the run's status)."""

    status: Lit | Field
    attempt: Field | Inc
    reason: Param | Case


@dataclass(frozen=True, slots=True, eq=False)
class Write:
    """One conditional write of the ``runs`` table/collection.

    ``sources`` are the statuses it may leave and ``target`` the one it writes
    (None: the status is unchanged). ``guard`` is the rest of the precondition.
    A ``bulk`` write has no ``run_id`` argument: it takes up to ``limit`` runs
    matching, in ``order`` when given.
    """

    name: str
    sources: tuple[RunStatus, ...]
    target: RunStatus | None
    guard: Cond | None
    sets: Mapping[str, Expr]
    entry: Entry | None
    returning: Returning
    bulk: bool = False

    #: the whole precondition: run_id (unless bulk), status, and the guard
    where: Cond = field(init=False)
    _kinds: tuple[tuple[str, ParamKind], ...] = field(init=False, repr=False)
    _reads: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # derived once: backends consult them on every write
        conds: list[Cond] = []
        if not self.bulk:
            conds.append(Eq("run_id", Param("run_id")))
        conds.append(Eq("status", Lit(str(self.sources[0]))) if len(self.sources) == 1 else In("status", self.sources))
        if self.guard is not None:
            conds.append(self.guard)
        object.__setattr__(self, "where", and_(*conds))
        kinds: dict[str, ParamKind] = {}
        parts: list[Expr | Cond] = [self.where, *self.sets.values()]
        if self.entry is not None:
            parts += [self.entry.reason, _NOW]
        for part in parts:
            kinds.update((p.name, p.kind) for p in params_of(part))
        object.__setattr__(self, "_kinds", tuple(kinds.items()))
        reads: list[str] = []
        entry = (self.entry.status, self.entry.attempt, self.entry.reason) if self.entry else ()
        for expr in [*self.sets.values(), *entry]:
            reads += fields_of(expr)
        object.__setattr__(self, "_reads", tuple(dict.fromkeys(reads)))

    @property
    def ends_run(self) -> bool:
        return self.target in TERMINAL

    def param_kinds(self) -> dict[str, ParamKind]:
        """Every argument the write reads, with how it is encoded."""
        return dict(self._kinds)

    def reads(self) -> tuple[str, ...]:
        """The row's fields the sets and the entry read (a compare-and-set must pin them)."""
        return self._reads


def _from(target: RunStatus, *only: RunStatus) -> tuple[RunStatus, ...]:
    """The statuses ``target`` may be reached from (``states.TRANSITIONS``),
    narrowed to ``only``; import fails if the table no longer allows one of them."""
    allowed = allowed_sources(target)
    chosen = tuple(s for s in allowed if not only or s in only)
    missing = set(only) - set(allowed)
    if missing or not chosen:
        raise AssertionError(f"states.TRANSITIONS does not allow {sorted(missing)} -> {target}")
    return chosen


_NOW = Param("now", "time")
_STARTED = Lit(str(RunStatus.STARTED))
#: the run is held by the attempt that writes
_HELD = And((Eq("attempt", Param("attempt", "int")), Truthy("released", False)))
#: the completion webhook's obligation, written by every write that ends a run: due
#: now when the run has somewhere to send it
_WEBHOOK_OWED: dict[str, Expr] = {"webhook_due_at": Case(((Eq("callback_url", Lit(None)), Lit(None)),), _NOW)}
#: what ending a run resets (neither a retry nor a pending send survive it)
_CLOSED: dict[str, Expr] = {
    "finished_at": _NOW,
    "updated_at": _NOW,
    "released": Lit(False),
    "outbox_at": Lit(None),
    **_WEBHOOK_OWED,
}


def _fail_bulk(name: str, source: RunStatus, guard: Cond) -> Write:
    """A sweep rule that fails the runs it matches, with the error it is given."""
    return Write(
        name=name,
        sources=_from(RunStatus.FAILURE, source),
        target=RunStatus.FAILURE,
        guard=guard,
        sets={"status": Lit(str(RunStatus.FAILURE)), **_CLOSED, "error": Param("error", "json")},
        entry=Entry(Lit(str(RunStatus.FAILURE)), Field("attempt"), Param("reason")),
        returning=Returning.RUN_ID,
        bulk=True,
    )


#: attempts left: counted ones, not numbered ones (see the module docstring)
_CAN_RETRY = Lt("attempts_counted", Param("max_attempts", "int"))

CLAIM = Write(
    name="claim",
    sources=_from(RunStatus.STARTED, RunStatus.PENDING, RunStatus.STARTED),
    target=RunStatus.STARTED,
    guard=Or(
        (
            Eq("status", Lit(str(RunStatus.PENDING))),
            And((_CAN_RETRY, Or((Truthy("released"), Lt("heartbeat_at", Param("stale_before", "time")))))),
        )
    ),
    sets={
        "status": _STARTED,
        "attempt": Inc("attempt"),
        "attempts_counted": Inc("attempts_counted"),
        "started_at": _NOW,
        "heartbeat_at": _NOW,
        "updated_at": _NOW,
        "released": Lit(False),
        "progress": Lit(None),
        "outbox_at": Lit(None),
        # a claim proves the message arrived, whether or not its enqueue was marked
        "enqueued_at": Coalesce("enqueued_at", _NOW),
    },
    entry=Entry(
        _STARTED,
        Inc("attempt"),
        Case(
            ((Eq("status", Lit(str(RunStatus.PENDING))), Lit("claimed")), (Truthy("released"), Lit("retry"))),
            Lit("reclaimed: heartbeat stale"),
        ),
    ),
    returning=Returning.ATTEMPT,
)

#: the claim as the runner makes it (``Store.claim_execution``): the same write,
#: giving back the whole run (SQL stores add what it names to the same statement)
CLAIM_RUN = replace(CLAIM, returning=Returning.RUN)

RELEASE = Write(
    name="release",
    sources=_from(RunStatus.STARTED, RunStatus.STARTED),
    target=RunStatus.STARTED,
    guard=_HELD,
    sets={"released": Lit(True), "heartbeat_at": _NOW, "updated_at": _NOW, "error": Param("error", "json")},
    entry=Entry(_STARTED, Field("attempt"), Param("reason")),
    returning=Returning.NOTHING,
)

#: the release of an attempt whose worker stopped: the attempt does not count
RELEASE_STOPPED = replace(
    RELEASE, name="release:stopped", sets={**RELEASE.sets, "attempts_counted": Dec("attempts_counted")}
)

FINISH: dict[RunStatus, Write] = {
    status: Write(
        name=f"finish:{status}",
        sources=_from(status, RunStatus.STARTED),
        target=status,
        guard=_HELD,
        sets={
            "status": Lit(str(status)),
            "finished_at": _NOW,
            "updated_at": _NOW,
            "result": Param("result", "json"),
            "error": Param("error", "json"),
            **_WEBHOOK_OWED,
        },
        entry=Entry(Lit(str(status)), Field("attempt"), Param("reason")),
        returning=Returning.RUN,
    )
    for status in (RunStatus.SUCCESS, RunStatus.FAILURE)
}

#: the finish as the runner makes it (``Store.finish_attempt``): the same write,
#: giving back only the run's id, as the runner reads nothing of the run it ended
FINISH_ATTEMPT: dict[RunStatus, Write] = {
    status: replace(write, returning=Returning.RUN_ID) for status, write in FINISH.items()
}

CANCEL = Write(
    name="cancel",
    sources=_from(RunStatus.REVOKED),
    target=RunStatus.REVOKED,
    guard=None,
    sets={"status": Lit(str(RunStatus.REVOKED)), **_CLOSED, "error": Param("error", "json")},
    entry=Entry(Lit(str(RunStatus.REVOKED)), Field("attempt"), Param("reason")),
    returning=Returning.RUN,
)

TIME_LIMIT = _fail_bulk("time_limit", RunStatus.STARTED, Lt("started_at", Param("cutoff", "time")))
WORKER_LOST = _fail_bulk(
    "worker_lost",
    RunStatus.STARTED,
    And((Lt("heartbeat_at", Param("cutoff", "time")), Ge("attempts_counted", Param("max_attempts", "int")))),
)
#: a scheduled run's wait counts from its start time, not from its (early) enqueue
EXPIRED = _fail_bulk(
    "expired",
    RunStatus.PENDING,
    And(
        (
            Lt("enqueued_at", Param("cutoff", "time")),
            Or((Eq("start_at", Lit(None)), Lt("start_at", Param("cutoff", "time")))),
        )
    ),
)

RELEASE_LOST = Write(
    name="release_lost",
    sources=_from(RunStatus.STARTED, RunStatus.STARTED),
    target=RunStatus.STARTED,
    # a released run is no one's to lose: it waits for its message (the sweep's
    # lost-message check looks after that), so it is released once per loss
    guard=And((Truthy("released", False), Lt("heartbeat_at", Param("cutoff", "time")), _CAN_RETRY)),
    # heartbeat_at = now: when it was released, which the lost-message check's grace counts from
    sets={"released": Lit(True), "heartbeat_at": _NOW, "updated_at": _NOW},
    entry=Entry(_STARTED, Field("attempt"), Param("reason")),
    returning=Returning.REF,
    bulk=True,
)

#: a run waiting for the broker to deliver its current message: PENDING and out of
#: the outbox (its send was confirmed), or STARTED and released (no attempt holds it)
_WAITING: dict[RunStatus, Cond] = {
    RunStatus.PENDING: Eq("outbox_at", Lit(None)),
    RunStatus.STARTED: Truthy("released"),
}
#: ... and since when (the confirmed send, the release): what ``list_awaiting`` orders
#: and pages by, on the sweep's own partial index of each status
AWAITING_SINCE = {RunStatus.PENDING: "enqueued_at", RunStatus.STARTED: "heartbeat_at"}

#: the runs of each status waiting for their message since before ``cutoff``: what
#: the sweep asks the broker about (``Store.list_awaiting``)
AWAITING: dict[RunStatus, Cond] = {
    status: And((Eq("status", Lit(str(status))), waiting, Lt(AWAITING_SINCE[status], Param("cutoff", "time"))))
    for status, waiting in _WAITING.items()
}

REDISPATCH = Write(
    name="redispatch",
    sources=tuple(_WAITING),
    target=None,
    guard=Or(tuple(And((Eq("status", Lit(str(status))), waiting)) for status, waiting in _WAITING.items())),
    # back in the outbox under the new id, recorded before it is sent: a crash in
    # between leaves a run whose current message the broker does not hold, which the
    # sweep finds again (and the outbox rule re-sends a PENDING one); enqueued_at is
    # set again when the send is confirmed, so expiry counts from the new message
    sets={
        "current_message_id": Param("message_id"),
        "outbox_at": Param("outbox_at", "time"),  # now, or later for a run held until its schedule
        "enqueued_at": Lit(None),
        "enqueue_error": Lit(None),
        "updated_at": _NOW,
    },
    entry=Entry(Field("status"), Field("attempt"), Param("reason")),
    returning=Returning.NOTHING,
)

HEARTBEAT = Write(
    name="heartbeat",
    sources=(RunStatus.STARTED,),
    target=None,
    guard=_HELD,
    sets={"heartbeat_at": _NOW},
    entry=None,
    returning=Returning.NOTHING,
)

PROGRESS = Write(
    name="progress",
    sources=(RunStatus.STARTED,),
    target=None,
    guard=_HELD,
    sets={"progress": Param("progress", "json"), "heartbeat_at": _NOW, "updated_at": _NOW},
    entry=None,
    returning=Returning.NOTHING,
)

_ENDED = tuple(sorted(TERMINAL))

#: the runs whose completion webhook is due before ``due_before`` (on the partial
#: index of ``webhook_due_at``: the cost follows what is due, not what is stored)
WEBHOOK_DUE: Cond = Lt("webhook_due_at", Param("due_before", "time"))

WEBHOOK_CLAIM = Write(
    name="webhook_claim",
    sources=_ENDED,
    target=None,
    guard=WEBHOOK_DUE,
    # the lease: no other deliverer takes it until lease_until (past the POST's
    # timeout); a crash after the POST leaves it due again then, so it is re-sent
    sets={"webhook_due_at": Param("lease_until", "time"), "webhook_attempts": Inc("webhook_attempts")},
    entry=None,
    returning=Returning.RUN,
    bulk=True,
)

WEBHOOK_OUTCOME = Write(
    name="webhook_outcome",
    sources=_ENDED,
    target=None,
    # held by the attempt that reports: a deliverer whose lease ran out and was
    # claimed again by another does not overwrite the newer attempt's state
    guard=Eq("webhook_attempts", Param("webhook_attempt", "int")),
    sets={"webhook_due_at": Param("next_at", "time"), "webhook": Param("delivery", "json")},
    entry=None,
    returning=Returning.NOTHING,
)

#: every write, in the order of the table above
WRITES: tuple[Write, ...] = (
    CLAIM,
    RELEASE,
    RELEASE_STOPPED,
    *FINISH.values(),
    CANCEL,
    TIME_LIMIT,
    WORKER_LOST,
    RELEASE_LOST,
    EXPIRED,
    REDISPATCH,
    HEARTBEAT,
    PROGRESS,
    WEBHOOK_CLAIM,
    WEBHOOK_OUTCOME,
)
BY_NAME: dict[str, Write] = {w.name: w for w in WRITES}
