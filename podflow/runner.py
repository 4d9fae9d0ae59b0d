"""The life of one execution of a run, shared by the Dramatiq actor and thread mode.

::

    claim ──None──> skip (one log line saying why) and ack; or, for the run's own
      │             message while a live-looking attempt holds it, put it back
      │             until that attempt's heartbeat would be stale ("deferred")
      │
      attempt n ──> build the request ──> generator(request, ctx)  [interruptible]
                                              │
              ┌───────────────────────────────┼──────────────────────────────┐
           returns                  transient error                 any other outcome
      promote staged files       attempts left: release and      finish(FAILURE) with the
      finish(SUCCESS)            re-raise (the caller retries);  error type and message, or
                                 else finish(FAILURE)            nothing (cancelled / lost)

Every write is fenced by the attempt, so a late or duplicate execution can
never overwrite a finished run, and every delivery goes through ``claim``:
a retry never re-runs a terminal run.

Files (:mod:`podflow.paths`): the generator writes into a per-attempt staging
directory, ``PODFLOW_DATA_DIR/podcasts/<run_id>/.attempt-<n>/``, removed
whatever happens. Only on success are the result's files moved
(``os.replace``) into ``podcasts/<run_id>/``. Per-attempt directories mean a
zombie attempt's clean-up can never delete a newer attempt's files.

Checkpoints (:mod:`podflow.checkpoints`): ``ctx.checkpoints`` keeps stage
results in ``PODFLOW_DATA_DIR/checkpoints/<run_id>/`` across the run's
attempts, and reads those of the runs it retries (``retry_of``, then theirs).
They are removed once this attempt's SUCCESS is written; after a FAILURE or
REVOKED they stay for a retry (the sweep expires them). So a released run loses
nothing: a shutdown, and a soft time limit reached by an attempt that stored
new checkpoints (attempts left), release the run for an immediate next
attempt, which goes on where this one stopped (the executor sends it again at
once, not after the failure backoff: :func:`podflow.retry.resumes_at_once`).
The result records, per stage, what was computed and what reused.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .checkpoints import Checkpoints, remove_checkpoints
from .errors import (
    GenerationError,
    RunCancelled,
    RunInterrupted,
    SoftTimeLimitExceeded,
    StoreError,
    WorkerShutdown,
)
from .generation.base import GenerationResult, Generator, GeneratorConfig
from .generation.request import request_of
from .generation.setup import generator_config
from .heartbeat import HeartbeatMonitor, Tracked
from .logs import run_context, set_attempt
from .models import ErrorInfo, Progress, Run, RunResult, StageCalls
from .paths import RESULT_FILES, checkpoint_dir, run_dir, staging_attempts, staging_dir, stored_path
from .retry import is_retryable
from .states import RunStatus
from .store.base import Claimed, Store
from .store.counters import checkpoint_counter
from .timeutil import utcnow

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["SHUTDOWN_REASON", "Outcome", "RunContext", "Runner", "build_runner"]

log = logging.getLogger(__name__)

OutcomeKind = Literal["succeeded", "failed", "cancelled", "lost", "skipped", "deferred"]
#: a deferred delivery comes back no sooner than this
_MIN_DEFER_S = 1.0
#: the history reason of a run released because its worker (or thread-mode API process) stopped
SHUTDOWN_REASON = "released: the worker stopped"
_MAX_MESSAGE = 2000
#: how far back a retry looks for checkpoints: the run it retries, that one's, ...
_MAX_RETRY_CHAIN = 8


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended (a transient failure raises instead)."""

    run_id: str
    kind: OutcomeKind
    attempt: int | None = None
    #: the run's status as this execution left it; None if the run is absent
    status: RunStatus | None = None
    detail: str = ""
    #: ``deferred``: deliver the message again after this many seconds
    retry_in_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.kind,
            "attempt": self.attempt,
            "status": None if self.status is None else str(self.status),
            "detail": self.detail,
        }


class _Staging:
    """An attempt's staging directory: named, and made, when the generator first asks
    for it, removed (with the run's directory, if that leaves it empty) at most once.
    ``root`` is PODFLOW_DATA_DIR, absolute."""

    def __init__(self, root: Path, run_id: str, attempt: int) -> None:
        self._where = (root, run_id, attempt)
        self.made = False

    @functools.cached_property
    def path(self) -> Path:  # a run that writes no files never builds it
        return staging_dir(*self._where)

    def make(self) -> Path:
        if not self.made:
            self.path.mkdir(parents=True, exist_ok=True)
            self.made = True
        return self.path

    def remove(self) -> None:
        if not self.made:  # a generator that wrote no files costs no directory operations
            return
        self.made = False
        try:
            self.path.rmdir()  # the common case: empty after promotion
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def _error(exc: BaseException, type_: str | None = None) -> ErrorInfo:
    message = str(exc) or type(exc).__name__
    return ErrorInfo(type=type_ or type(exc).__name__, message=message[:_MAX_MESSAGE])


@dataclass
class RunContext:
    """The :class:`~podflow.generation.base.GenerationContext` a generator gets."""

    run_id: str
    attempt: int
    _staging: _Staging = field(repr=False)
    config: GeneratorConfig
    _store: Store = field(repr=False)
    _tracked: Tracked = field(repr=False)
    checkpoints: Checkpoints
    _clock: Callable[[], datetime] = field(repr=False, default=utcnow)

    @property
    def work_dir(self) -> Path:
        """The attempt's staging directory, created on first use."""
        return self._staging.make()

    def progress(self, stage: str, percent: float, message: str = "") -> None:
        """Report progress: kept, and written by the process's heartbeat monitor with
        the next batch (the latest report of each run; see :mod:`podflow.heartbeat`)."""
        progress = Progress(stage=stage[:100], percent=min(100.0, max(0.0, percent)), message=message[:500])
        self._tracked.report(progress)
        self._tracked.check()

    def check_cancelled(self) -> None:
        self._tracked.check()


@dataclass
class _Promoted:
    """Files moved into the run's directory, with their inode: removing them
    later must never remove a newer attempt's file of the same name."""

    files: list[tuple[Path, int]] = field(default_factory=list)

    def remove(self) -> None:
        for path, inode in self.files:
            try:
                if path.stat().st_ino == inode:
                    path.unlink()
            except OSError:
                pass
        self.files.clear()


class Runner:
    """Executes runs. Thread-safe: one Runner serves every thread of a process.

    Parameters:
      store, generator, monitor: where runs live, what generates, who heart-beats.
      data_dir: PODFLOW_DATA_DIR; result paths are relative to it.
      config: the generator's options.
      soft_time_limit_s: only to word the ``soft_time_limit`` error.
      time_limit_errors: the interrupts that mean the soft time limit passed:
        podflow's own (thread mode's heartbeat raises it), and whatever the
        executor's time limit raises (a Dramatiq worker passes its
        ``TimeLimitExceeded``), so the runner imports no broker.
    """

    def __init__(
        self,
        *,
        store: Store,
        generator: Generator,
        monitor: HeartbeatMonitor,
        data_dir: Path,
        config: GeneratorConfig | None = None,
        soft_time_limit_s: float | None = None,
        time_limit_errors: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded,),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.generator = generator
        self.monitor = monitor
        self.data_dir = Path(data_dir)
        #: absolute once, not per run: the paths given to generators are absolute
        self._root = self.data_dir.absolute()
        self.config = config or GeneratorConfig()
        self.soft_time_limit_s = soft_time_limit_s
        self.time_limit_errors = time_limit_errors
        self._clock = clock

    # -- entry point ------------------------------------------------------------
    def execute(self, run_id: str, *, message_id: str | None = None) -> Outcome:
        """Claim ``run_id`` and execute it once; ``message_id`` is the delivery's
        (queue mode), which the run's own message may be deferred by.

        Raises:
          a retryable error (see :func:`podflow.retry.is_retryable`: transient, or
          ``WorkerShutdown``) when the run should be retried later: the run was released
          first (or could not be claimed at all). Anything else ends in an Outcome.
        """
        with run_context(run_id):  # every line about the run carries it (podflow.logs)
            claimed = self.store.claim_execution(run_id, now=self._clock())
            if claimed is None:
                return self._not_claimed(run_id, message_id)
            attempt = claimed.attempt
            set_attempt(attempt)
            log.debug("run %s: attempt %d started", run_id, attempt)
            outcome = self._run(claimed)
            detail = f": {outcome.detail}" * bool(outcome.detail)
            log.info("run %s: attempt %d %s%s", run_id, attempt, outcome.kind, detail)
            return outcome

    def _not_claimed(self, run_id: str, message_id: str | None) -> Outcome:
        """A refused claim: skipped, or deferred when the delivery is the run's own
        message and an attempt that may be dead holds the run. Dramatiq hands a dead
        worker's message on as soon as that worker is silent for its broker heartbeat
        timeout, before the run's own heartbeat is stale; acknowledging it then would
        lose the only message of the run. So it comes back when the claim can tell."""
        now = self._clock()
        try:
            run = self.store.get_run(run_id)
        except StoreError as exc:
            run, why = None, f"claim refused; cannot tell why: {exc}"
        else:
            why = self._why_not_claimed(run, now=now)
        held = (
            run is not None
            and run.status is RunStatus.STARTED
            and not run.released
            and run.attempts_counted < self.store.max_attempts
            and run.heartbeat_at is not None
        )
        if held and message_id is not None and run is not None and message_id == run.current_message_id:
            assert run.heartbeat_at is not None
            stale_in_s = (run.heartbeat_at - now).total_seconds() + self.store.heartbeat_timeout_s
            wait_s = max(_MIN_DEFER_S, stale_in_s + _MIN_DEFER_S / 10)
            log.info("run %s: its message put back for %.1f s: %s", run_id, wait_s, why)
            return Outcome(run_id, "deferred", status=run.status, detail=why, retry_in_s=wait_s)
        log.info("run %s: skipped: %s", run_id, why)
        return Outcome(run_id, "skipped", status=None if run is None else run.status, detail=why)

    def _why_not_claimed(self, run: Run | None, *, now: datetime) -> str:
        if run is None:
            return "the run does not exist (deleted?)"
        if run.is_terminal:
            return f"the run is already {run.status}"
        if run.status is RunStatus.STARTED and run.attempts_counted >= self.store.max_attempts:
            return f"attempts exhausted ({run.attempts_counted} of {self.store.max_attempts})"
        if run.status is RunStatus.STARTED:
            age = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else float("nan")
            return f"held by live attempt {run.attempt} (heartbeat {age:.1f} s ago)"
        return f"the run changed concurrently (now {run.status})"

    # -- one attempt ------------------------------------------------------------
    def _run(self, claimed: Claimed) -> Outcome:
        run, run_id, attempt = claimed.run, claimed.run.run_id, claimed.attempt
        # absolute, so paths a generator builds from ctx.work_dir are too
        staging = _Staging(self._root, run_id, attempt)
        tracked = self.monitor.track(run_id, attempt)
        promoted = _Promoted()
        succeeded = False
        checkpoints: Checkpoints | None = None
        try:
            try:
                request = request_of(claimed)  # read with the claim: no store round trip here
                checkpoints = self._checkpoints(run, tracked)
                ctx = RunContext(run_id, attempt, staging, self.config, self.store, tracked, checkpoints, self._clock)
                with tracked.interruptible():
                    result = self.generator(request, ctx)
                # still ours? A zombie attempt must not even touch the run's files, and the last
                # progress reported is written now, before the outcome; a result without files and
                # no progress waiting touches nothing, and the fenced finish alone decides
                if tracked.reported or _has_files(result):
                    tracked.note(self.monitor.settle(tracked))
                tracked.check()
                run_result = _with_stages(self._promote(run_id, staging.path, result, promoted), checkpoints)
                staging.remove()  # before the outcome is visible
                self._remove_older_staging(run_id, attempt)
                done = self.store.finish_attempt(
                    run_id, attempt, status=RunStatus.SUCCESS, now=self._clock(), result=run_result
                )
            except BaseException as exc:
                staging.remove()  # partial files: gone before the outcome is visible
                self._settle_progress(tracked)
                progressed = checkpoints is not None and checkpoints.enabled and checkpoints.computed > 0
                return self._failed(run_id, attempt, exc, progressed=progressed, counted=run.attempts_counted)
            if not done:
                ended = self._ended(run_id, attempt, "lost", "finish refused: the attempt no longer owns the run")
                if ended.status is RunStatus.REVOKED:  # cancelled after the generator returned
                    return replace(ended, kind="cancelled", detail="cancelled while running")
                return ended
            succeeded = True
            # only now: until the store took this SUCCESS, another attempt may still need them.
            # A first attempt that stored and reused none has none on disk (no stat needed)
            if attempt > 1 or checkpoints.tally():
                remove_checkpoints(self.data_dir, run_id)
            return Outcome(run_id, "succeeded", attempt, RunStatus.SUCCESS)
        finally:
            self.monitor.untrack(tracked)
            if promoted.files and not succeeded:
                self._discard_promoted(run_id, promoted)
            staging.remove()

    def _settle_progress(self, tracked: Tracked) -> None:
        """A failed attempt's last progress report, written before its outcome (best effort)."""
        if not tracked.reported:
            return
        try:
            self.monitor.settle(tracked)
        except StoreError as exc:
            log.warning("run %s: last progress not recorded: %s", tracked.run_id, exc)

    def _checkpoints(self, run: Run, tracked: Tracked) -> Checkpoints:
        """The attempt's checkpoints: the run's own, then those of the runs it retries."""
        origins: list[tuple[str, Path]] = []
        seen, current = {run.run_id}, run.retry_of
        while current and current not in seen and len(origins) < _MAX_RETRY_CHAIN:
            seen.add(current)
            origins.append((current, checkpoint_dir(self._root, current)))
            try:
                origin = self.store.get_run(current)
            except StoreError as exc:  # the nearer ones are enough
                log.warning("run %s: checkpoints of the runs before %s not looked for: %s", run.run_id, current, exc)
                break
            current = origin.retry_of if origin is not None else None
        counts = self.monitor.counts
        return Checkpoints(
            root=checkpoint_dir(self._root, run.run_id),
            origins=origins,
            fence=tracked.check,
            on_count=lambda stage, outcome: counts.add(checkpoint_counter(stage, outcome)),
        )

    def _failed(self, run_id: str, attempt: int, exc: BaseException, *, progressed: bool, counted: int) -> Outcome:
        """Record why ``attempt`` ended without success; re-raise what must be retried.

        ``progressed``: the attempt stored new checkpoints, so a soft time limit
        releases the run (attempts left) for a next attempt that goes on from them.
        ``counted``: the run's attempts that count toward max_attempts, this one
        included (``Run.attempts_counted`` as the claim left it).
        """
        if isinstance(exc, RunCancelled):
            return self._ended(run_id, attempt, "cancelled", "cancelled while running")
        if isinstance(exc, self.time_limit_errors):
            limit = f" of {self.soft_time_limit_s:g} s" if self.soft_time_limit_s else ""
            if progressed and counted < self.store.max_attempts:
                message = f"soft time limit{limit} exceeded; the next attempt resumes from the checkpoints"
                return self._release(run_id, attempt, exc, ErrorInfo(type="soft_time_limit", message=message))
            return self._finish_failure(
                run_id, attempt, ErrorInfo(type="soft_time_limit", message=f"soft time limit{limit} exceeded")
            )
        if isinstance(exc, WorkerShutdown):  # no failure of the run's, on its last attempt too
            return self._release(run_id, attempt, exc)
        if isinstance(exc, RunInterrupted):
            return self._ended(run_id, attempt, "lost", str(exc) or "lease lost")
        retryable = is_retryable(exc)
        if retryable and counted >= self.store.max_attempts:
            return self._finish_failure(run_id, attempt, _error(exc))
        if retryable or not isinstance(exc, Exception):
            # retry later; or KeyboardInterrupt, SystemExit...: the process is
            # going away, so give the run up for the next attempt
            return self._release(run_id, attempt, exc)
        return self._finish_failure(run_id, attempt, _error(exc))

    def _release(self, run_id: str, attempt: int, exc: BaseException, error: ErrorInfo | None = None) -> Outcome:
        """Give the run up for a retry and re-raise ``exc`` (returns only if the run was lost).

        A stopping worker is no failure of the run: it is released with its reason
        (:data:`SHUTDOWN_REASON`) and no error, the attempt does not count toward
        max_attempts (``counted=False``), and it says so in one line."""
        stopping = isinstance(exc, WorkerShutdown)
        if not stopping:
            error = error or _error(exc)
        try:
            reason = SHUTDOWN_REASON if stopping else None
            released = self.store.release(
                run_id, attempt, error=error, now=self._clock(), reason=reason, counted=not stopping
            )
        except StoreError as store_exc:  # the sweep re-dispatches it once the heartbeat is stale
            log.warning("run %s: cannot release attempt %d: %s", run_id, attempt, store_exc)
            raise exc from None
        if not released:
            return self._ended(run_id, attempt, "lost", f"release refused after {type(exc).__name__}")
        if error is None:
            log.info("run %s: attempt %d %s; another attempt continues it", run_id, attempt, SHUTDOWN_REASON)
        else:
            log.info("run %s: attempt %d released for a retry: %s", run_id, attempt, error.message)
        raise exc

    def _finish_failure(self, run_id: str, attempt: int, error: ErrorInfo) -> Outcome:
        self._remove_older_staging(run_id, attempt)
        if not self.store.finish_attempt(run_id, attempt, status=RunStatus.FAILURE, now=self._clock(), error=error):
            why = f"failure not recorded ({error.type}): the attempt no longer owns the run"
            return self._ended(run_id, attempt, "lost", why)
        return Outcome(run_id, "failed", attempt, RunStatus.FAILURE, f"{error.type}: {error.message}")

    def _ended(self, run_id: str, attempt: int, kind: OutcomeKind, detail: str) -> Outcome:
        """An outcome this attempt did not write: the run's status is whatever ended it."""
        try:
            run = self.store.get_run(run_id)
        except StoreError:
            run = None
        return Outcome(run_id, kind, attempt, None if run is None else run.status, detail)

    # -- files ------------------------------------------------------------------
    def _promote(self, run_id: str, staging: Path, result: GenerationResult, promoted: _Promoted) -> RunResult:
        """Move the result's files from ``staging`` into the run's directory.

        Raises:
          GenerationError: a result path lies outside the work directory.
        """
        if not isinstance(result, GenerationResult):
            raise GenerationError(f"the generator returned {type(result).__name__}, not a GenerationResult")
        if all(getattr(result, name) is None for name in RESULT_FILES.values()):
            return RunResult(duration_s=result.duration_s)
        root = staging.resolve()
        final = run_dir(self.data_dir, run_id)
        moved: dict[Path, str] = {}
        paths: dict[str, str | None] = {}
        for name in RESULT_FILES.values():
            value = getattr(result, name)
            if value is None:
                paths[name] = None
                continue
            source = (root / value).resolve()  # a relative path is relative to the work dir
            if not source.is_relative_to(root) or source == root:
                raise GenerationError(f"{name} {str(value)!r} lies outside the work directory")
            if source not in moved:
                relative = source.relative_to(root)
                target = final / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                promoted.files.append((target, target.stat().st_ino))
                moved[source] = stored_path(run_id, relative)
            paths[name] = moved[source]
        return RunResult.model_validate({**paths, "duration_s": result.duration_s})

    def _discard_promoted(self, run_id: str, promoted: _Promoted) -> None:
        """Remove promoted files of a run that did not end SUCCESS (by this attempt or another)."""
        try:
            run = self.store.get_run(run_id)
        except StoreError as exc:  # cannot tell: a SUCCESS may have been written; keep them
            log.warning("run %s: keeping promoted files, outcome unknown: %s", run_id, exc)
            return
        if run is None or run.status is not RunStatus.SUCCESS:
            promoted.remove()

    def _remove_older_staging(self, run_id: str, attempt: int) -> None:
        """Remove staging directories that crashed earlier attempts left behind (before
        this attempt writes the outcome; an older attempt can no longer win)."""
        if attempt == 1:
            return
        for older, path in staging_attempts(self.data_dir, run_id):
            if older < attempt:
                shutil.rmtree(path, ignore_errors=True)


def _has_files(result: object) -> bool:
    """Whether ``result`` names files to promote (a result of the wrong type goes on to be refused)."""
    return not isinstance(result, GenerationResult) or any(
        getattr(result, name) is not None for name in RESULT_FILES.values()
    )


def _with_stages(result: RunResult, checkpoints: Checkpoints) -> RunResult:
    """``result`` with what each stage computed and reused."""
    tally = checkpoints.tally()
    stages = {stage: StageCalls(computed=t.computed, reused=t.reused) for stage, t in tally.items()}
    return result.model_copy(update={"stages": stages, "reused_from_retried": sum(t.inherited for t in tally.values())})


def build_runner(
    settings: Settings,
    *,
    store: Store,
    monitor: HeartbeatMonitor,
    generator: Generator,
    time_limit_errors: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded,),
) -> Runner:
    """A Runner configured from the settings (an edge helper for actors and thread mode)."""
    return Runner(
        store=store,
        generator=generator,
        monitor=monitor,
        data_dir=settings.data_dir,
        # providers, caps and audio format; the providers count calls into the heartbeat's counters
        config=generator_config(settings, counts=monitor.counts),
        soft_time_limit_s=settings.soft_time_limit_s,
        time_limit_errors=time_limit_errors,
    )
