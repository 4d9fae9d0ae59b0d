"""Run states and the table of allowed transitions.

::

    PENDING ──claim──> STARTED ──finish──> SUCCESS | FAILURE
       │                  │  ↺ re-claim (new attempt) when the heartbeat is stale
       │                  └──cancel / sweep──> REVOKED | FAILURE
       └──cancel / sweep──> REVOKED | FAILURE

A terminal state is never left. Stores enforce this table in the filter of
every conditional write (``allowed_sources``), so a late or duplicate writer
cannot overwrite a finished run.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TERMINAL", "TRANSITIONS", "RunStatus", "allowed_sources", "can_transition", "is_terminal"]


class RunStatus(StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED})

#: status -> the statuses it may move to. STARTED -> STARTED is a re-claim
#: (a new attempt after the previous one's heartbeat went stale).
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.STARTED, RunStatus.FAILURE, RunStatus.REVOKED}),
    RunStatus.STARTED: frozenset({RunStatus.STARTED, RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.REVOKED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILURE: frozenset(),
    RunStatus.REVOKED: frozenset(),
}


def is_terminal(status: RunStatus | str) -> bool:
    """True for SUCCESS, FAILURE and REVOKED: states that are never left."""
    return RunStatus(status) in TERMINAL


def can_transition(source: RunStatus | str, target: RunStatus | str) -> bool:
    """Whether the table allows ``source -> target``."""
    return RunStatus(target) in TRANSITIONS[RunStatus(source)]


def allowed_sources(target: RunStatus | str) -> tuple[RunStatus, ...]:
    """The statuses from which ``target`` may be reached, in table order.

    Stores put exactly this list in the precondition of a conditional write.
    """
    target = RunStatus(target)
    return tuple(source for source, targets in TRANSITIONS.items() if target in targets)
