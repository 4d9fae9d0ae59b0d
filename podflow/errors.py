"""The podflow exception tree.

Everything podflow raises on purpose derives from :class:`PodflowError`, with
one subtree per subsystem (like ``dramatiq.errors``)::

    PodflowError
    ├── ConfigError                 invalid setting; names the variable
    ├── StoreError
    │   └── StoreUnavailable        the store cannot be reached (transient)
    ├── BrokerError
    │   ├── BrokerUnavailable       the broker cannot be reached (transient)
    │   └── NotSupported            the broker cannot do it (dead letters on RabbitMQ)
    ├── NotFound
    │   ├── RunNotFound
    │   ├── SourceNotFound
    │   ├── ProfileNotFound
    │   └── ResultNotFound      a run's audio, transcript or outline is not (yet) there
    ├── Conflict                    the request is valid but the state forbids it
    │   ├── InvalidTransition       e.g. cancel a terminal run, start a started one
    │   ├── IdempotencyConflict     same Idempotency-Key, different body
    │   ├── RequestInFlight         same Idempotency-Key, the first request still being processed
    │   ├── AlreadyExists
    │   └── UnreadableProfile       a stored profile this version refuses (replace or delete it)
    ├── InvalidInput                bad input; ``field`` names the culprit
    │   ├── SourceTooLarge
    │   └── NamesMissing            a run's insert found a profile or source it names gone
    └── GenerationError             permanent: the run fails at once
        ├── TransientGenerationError  retried with backoff
        │   ├── ProviderUnavailable   a provider's 5xx/timeouts outlasted the in-attempt retries
        │   └── ProviderRateLimited   429s past PODFLOW_PROVIDER_RATE_LIMIT_WAIT
        ├── ProviderRejected        a provider's 4xx: the message names the setting to fix
        ├── UnusableReply           the LLM's replies failed validation after re-asks
        └── ToolMissing             a required program (espeak-ng, ffmpeg) is absent

The provider errors live in :mod:`podflow.generation.providers.errors`, with
the one function that classifies the SDK's errors into them.

Interrupts that must not be swallowed by ``except Exception`` derive from
:class:`RunInterrupted`, a ``BaseException`` like dramatiq's ``Interrupt``::

    RunInterrupted
    ├── RunCancelled                the run was cancelled (REVOKED)
    ├── LeaseLost                   this attempt no longer owns the run
    ├── SoftTimeLimitExceeded       PODFLOW_SOFT_TIME_LIMIT passed (thread mode;
    │                               a Dramatiq worker raises its TimeLimitExceeded)
    └── WorkerShutdown              the executing process is stopping: retried elsewhere

They are podflow's own, so the runner and thread mode depend on no broker.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExists",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigError",
    "Conflict",
    "GenerationError",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "LeaseLost",
    "NamesMissing",
    "NotFound",
    "NotSupported",
    "PodflowError",
    "ProfileNotFound",
    "RequestInFlight",
    "ResultNotFound",
    "RunCancelled",
    "RunInterrupted",
    "RunNotFound",
    "SoftTimeLimitExceeded",
    "SourceNotFound",
    "SourceTooLarge",
    "StoreError",
    "StoreUnavailable",
    "ToolMissing",
    "TransientGenerationError",
    "WorkerShutdown",
    "UnreadableProfile",
]


class PodflowError(Exception):
    """Root of every error podflow raises on purpose."""


# -- configuration --------------------------------------------------------------


class ConfigError(PodflowError):
    """A setting is invalid. ``str(err)`` is one line naming the variable."""


# -- store and broker -----------------------------------------------------------


class StoreError(PodflowError):
    """Base class for run-store errors."""


class StoreUnavailable(StoreError):
    """The store (SQLite file or MongoDB server) cannot be reached. Transient."""


class BrokerError(PodflowError):
    """Base class for message-broker errors."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached; nothing was enqueued. Transient."""


# -- domain ---------------------------------------------------------------------


class NotSupported(BrokerError):
    """The configured broker cannot do this (the message says what can)."""


class NotFound(PodflowError):
    """The named object does not exist."""

    kind = "object"

    def __init__(self, key: str) -> None:
        super().__init__(f"{self.kind} {key!r} not found")
        self.key = key


class RunNotFound(NotFound):
    kind = "run"


class SourceNotFound(NotFound):
    kind = "source"


class ProfileNotFound(NotFound):
    kind = "profile"


class ResultNotFound(NotFound):
    """A run has no such result file (yet): it is not SUCCESS, or produced none."""

    kind = "result"

    def __init__(self, run_id: str, what: str, why: str) -> None:
        PodflowError.__init__(self, f"run {run_id} has no {what}: {why}")
        self.key = run_id
        self.what = what


class Conflict(PodflowError):
    """The request is well formed but the current state forbids it."""


class InvalidTransition(Conflict):
    """A status change the state machine or the run's current state refuses."""

    def __init__(self, message: str, *, run_id: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class IdempotencyConflict(Conflict):
    """An Idempotency-Key was reused with a different request body."""


class RequestInFlight(Conflict):
    """A request with this Idempotency-Key is still being processed: its run is
    recorded but not yet handed to the broker. Try again shortly."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class AlreadyExists(Conflict):
    """An object with this name already exists."""


class UnreadableProfile(Conflict):
    """A stored profile no longer validates (an older version wrote it, e.g. a
    whitespace-only ``personality`` stored as ``""``). Replacing or deleting it,
    which never reads it, repairs the store.

    ``name`` is None when the store did not say which profile it was;
    ``problems`` lists ``{field, message}``.
    """

    def __init__(self, kind: str, name: str | None, problems: list[dict[str, Any]]) -> None:
        which = f"{kind} profile {name!r}" if name is not None else f"a stored {kind} profile"
        first = problems[0] if problems else {"field": "?", "message": "invalid"}
        super().__init__(
            f"{which} cannot be read: {first['field']}: {first['message']}; "
            "it was stored by an older version: replace it or delete it"
        )
        self.kind = kind
        self.name = name
        self.problems = problems


class InvalidInput(PodflowError):
    """Input that fails validation. ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.details = details


class SourceTooLarge(InvalidInput):
    """A source document exceeds PODFLOW_MAX_SOURCE_BYTES."""


class NamesMissing(InvalidInput):
    """``Store.create_run(check_names=True)`` found a profile or source the run names
    missing, and inserted nothing (:func:`podflow.lifecycle.submit` then says which)."""


# -- generation -----------------------------------------------------------------


class GenerationError(PodflowError):
    """A generator failed for good; the run ends FAILURE without retry."""


class TransientGenerationError(GenerationError):
    """A generator failed in a way worth retrying (network, rate limit, ...)."""


class ToolMissing(GenerationError):
    """A program the generator needs is not installed."""


# -- interrupts -----------------------------------------------------------------


class RunInterrupted(BaseException):
    """Raised inside a running generation to stop it.

    A ``BaseException`` so that a generator's ``except Exception`` cannot
    swallow it, like dramatiq's ``Interrupt``.
    """


class RunCancelled(RunInterrupted):
    """The run was cancelled (REVOKED) while it was running."""


class LeaseLost(RunInterrupted):
    """This attempt no longer owns the run (re-claimed, or failed by the sweep)."""


class SoftTimeLimitExceeded(RunInterrupted):
    """The run's soft time limit (PODFLOW_SOFT_TIME_LIMIT) passed while it ran: it fails."""


class WorkerShutdown(RunInterrupted):
    """The process executing the run is stopping: the run is released and retried elsewhere."""
