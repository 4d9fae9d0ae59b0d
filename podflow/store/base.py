"""The run store: one small protocol, three backends (SQLite, PostgreSQL, MongoDB).

Every status change is ONE atomic conditional write whose precondition is the
state machine's (``podflow.states.allowed_sources``) plus, for writes made by
an execution, the attempt that makes it (the fence). The same write appends
the transition to the run's ``history``. Nothing reads a status and then
writes it back unconditionally. Each such write is defined once, as data, in
:mod:`podflow.store.transitions`; :mod:`podflow.store.sql` renders it for
SQLite and PostgreSQL, :mod:`podflow.store.mongo.render` for MongoDB, and
:mod:`podflow.store.shared` holds what the backends do alike.

Layout
======
Every backend keeps the same records; MongoDB as collections, SQLite and
PostgreSQL as tables (SQLite: timestamps as INTEGER milliseconds since the
epoch, nested values as JSON text; PostgreSQL: ``timestamptz`` and ``jsonb``,
history entries' ``at`` as ISO-8601 text).

``runs`` -- one record per run (model: ``podflow.models.Run``)
    run_id            ``run_`` + 32 hex; unique
    status            PENDING | STARTED | SUCCESS | FAILURE | REVOKED
    episode_profile, speaker_profile, episode_name, source_ids, briefing_suffix
                      the request
    mode              queue | thread: who executes it
    priority          high | normal | low: its band (whose queue carries its
                      message); ``normal`` for runs stored before bands
                      (schema 7 on SQLite, 5 on PostgreSQL; MongoDB sets it on open)
    start_at          scheduled: not started before this time (null: at once);
                      the expiry of a PENDING run counts from it
    attempt           0 until claimed; +1 on every claim (the fence)
    attempts_counted  the attempts that count toward max_attempts: +1 on every
                      claim, -1 on a release because the worker stopped
                      (schema 8 on SQLite, 6 on PostgreSQL; MongoDB sets it on
                      open; runs stored before count every attempt made)
    created_at, updated_at, started_at (of the current attempt),
    finished_at, heartbeat_at
    released          no execution holds the run; claimable at once (retry
                      scheduled, the worker stopped, or found lost by the sweep)
    message_id        the first broker message id (GET /tasks/{message_id})
    current_message_id  the message that carries the run now: message_id,
                      until the sweep re-sends a run whose message the broker
                      lost (recorded before the send: ``redispatch``)
    outbox_at         start requested at this time, enqueue not yet confirmed
    enqueued_at       the enqueue was confirmed at this time
    enqueue_error     why the last enqueue failed
    progress          {stage, percent, message}
    error             {type, message}
    result            {audio_path, transcript_path, outline_path, duration_s}
    history           [{status, at, attempt, reason}], appended by each change
    idempotency_key   unique when present (absent, not null, in MongoDB)
    request_hash      fingerprint of the request (idempotent-retry check)
    retry_of          run_id this run retries
    callback_url      where the completion webhook goes (the request's, else
                      PODFLOW_WEBHOOK_URL at submit); null: none
    webhook_due_at    the webhook's next delivery attempt is due (written by the
                      transition that ends the run, in the same write; leased
                      forward by each attempt; null once delivered or given up)
    webhook_attempts  delivery attempts claimed (fences their outcome)
    webhook           {outcome, last_attempt_at, last_status, last_error,
                      reply_excerpt, delivered_at}: the last attempt's outcome
                      (schema 6 on SQLite, 4 on PostgreSQL)
    name_key          the episode name case-folded (``name_key``), for search;
                      derived at insert, never shown (schema 4 on SQLite, 2 on
                      PostgreSQL; MongoDB backfills it on open)

    Indexes: unique run_id; unique sparse idempotency_key; message_id;
    (status, heartbeat_at) for lost runs; (status, started_at) for the time
    limit; (status, outbox_at) for failed enqueues; (status, enqueued_at) for
    expired PENDING runs; (status, created_at, run_id) and (created_at, run_id)
    for listings; finished_at (set by the terminal transitions alone, so it holds
    the ended runs only) for throughput charts and retention; for the listing's filters
    (:class:`RunFilter`), (name_key, created_at, run_id), (episode_profile,
    created_at, run_id), (speaker_profile, created_at, run_id) and retry_of
    (sparse); webhook_due_at, partial on the due ones (``runs_webhook_due``).
    (SQLite keeps the four sweep indexes partial, on the STARTED or
    PENDING rows they serve.)

``sources`` -- source documents (model: ``podflow.models.Source``)
    source_id (unique), title, filename, content_type, byte_size,
    sha256 (unique: the same text is stored once), text, created_at.

``episode_profiles``, ``speaker_profiles`` -- profiles by unique ``name``;
    the profile itself as a document (``podflow.models.*Profile``).

``seeded`` -- (kind, name) of every bundled profile ever seeded, unique, so
    seeding never overwrites an edit nor brings back a deleted profile.

``leases`` -- short named leases (name unique, holder, expires_at): one
    scheduler sweeps at a time.

``stats`` -- monotonic counters for ``/metrics`` and the dashboard, which
    deleting runs never lowers: ``name -> integer`` (SQLite: a table of
    (name unique, value); MongoDB: one document ``{_id: "counters", <name>: value}``).
    Names (made by ``podflow.store.counters``, read back by ``StoreStats.parse``):
    created                        runs inserted
    finished:<STATUS>              runs that reached SUCCESS, FAILURE or REVOKED
    failed:<error.type>            FAILURE runs by error type (``unknown`` if none)
    duration_count:<STATUS>        of those, runs that had started (started_at set)
    duration_ms_sum:<STATUS>       their ``finished_at - started_at`` (the last
                                   attempt's), in ms, summed
    duration_le:<STATUS>:<bound>   how many took at most <bound> s and more than
                                   the previous bound (``DURATION_BUCKETS_S``, then
                                   ``inf``): histogram buckets, not cumulative
    sweeps                         sweeps recorded (``record_sweep``)
    swept:<rule>                   runs each sweep rule touched (and ``send_errors``),
                                   summed
    sweep_last_at                  the last recorded sweep, ms since the epoch (the
                                   one value that is not a counter: it moves to the latest)
    checkpoints:<stage>:<outcome>  stage results ``computed`` or ``reused`` from a
                                   checkpoint (``add_counts``, from the workers)
    provider_calls:<endpoint>:<outcome>
                                   requests to the ``llm``/``tts`` provider by outcome
                                   (ok, 429, 5xx, 4xx, timeout, connection, cancelled)
    webhooks:<outcome>             completion webhook delivery attempts: delivered,
                                   retried (failed, sent again later), expired (the
                                   last failure: given up); ``add_counts``, from the deliverer

    SQLite and PostgreSQL maintain the run counters with triggers on ``runs`` (AFTER
    INSERT; AFTER UPDATE OF status into a terminal status), so they change in the very
    statement, and transaction, that changes the run. MongoDB ``$inc``s the
    counters document right after each transition it wrote, best effort: a
    failure is logged, never reported as a failed transition, and a process
    dying between the two writes loses that increment. A MongoDB store opened
    without the document counts the existing runs once to create it (the
    SQLite migration that added the table does the same).

``meta`` -- facts about the store itself (key -> value; SQLite and PostgreSQL
    a table, MongoDB a collection of ``{_id: key, value}``):
    store_id        a random id made once, with the store: every message names the
                    store its run belongs to, so a worker of another deployment on
                    the same queue gives it back instead of dropping it
    schema_version  PostgreSQL's migration version (SQLite: ``PRAGMA user_version``)

SQLite keeps its schema version in ``PRAGMA user_version`` and migrates
forward on open; PostgreSQL migrates forward on open under an advisory lock
(:mod:`podflow.store.postgres.migrations`); MongoDB indexes are created
idempotently on open.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import InvalidInput, StoreError
from ..models import (
    EpisodeProfile,
    ErrorInfo,
    Lease,
    Progress,
    Run,
    RunPage,
    RunRef,
    RunResult,
    Source,
    SourceInfo,
    SpeakerProfile,
    WebhookDelivery,
)
from ..states import RunStatus, can_transition
from ..timeutil import from_ms, to_ms
from .counters import MinuteCount, StoreStats

__all__ = [
    "DEFAULT_BATCH",
    "Claimed",
    "MinuteCount",
    "Profile",
    "ProfileKind",
    "RunFilter",
    "Store",
    "StoreStats",
    "StoredProfile",
    "decode_cursor",
    "encode_cursor",
    "finish_status",
    "lease_of",
    "name_key",
    "newer_schema",
    "profile_of",
    "prefix_range",
    "profile_kind",
    "profile_table",
]

ProfileKind = Literal["episode", "speaker"]
Profile = EpisodeProfile | SpeakerProfile
#: a profile as a store returns it unread: JSON text (SQLite), a document (PostgreSQL, MongoDB), None if absent
StoredProfile = str | bytes | Mapping[str, Any] | None

#: how many runs one bulk sweep operation touches at most per call
DEFAULT_BATCH = 1000

PROFILE_MODELS: dict[str, type[EpisodeProfile] | type[SpeakerProfile]] = {
    "episode": EpisodeProfile,
    "speaker": SpeakerProfile,
}


def profile_kind(profile: Profile) -> ProfileKind:
    return "episode" if isinstance(profile, EpisodeProfile) else "speaker"


def profile_table(kind: ProfileKind) -> str:
    """The table (collection) of ``kind``'s profiles.

    Raises:
      ValueError: not a profile kind.
    """
    if kind not in PROFILE_MODELS:
        raise ValueError(f"unknown profile kind {kind!r}")
    return f"{kind}_profiles"


def newer_schema(where: str, version: int, known: int) -> StoreError:
    """The error for a database whose schema ``version`` is past the ``known`` one."""
    return StoreError(
        f"{where} has schema version {version}, newer than this podflow understands ({known}); upgrade podflow"
    )


def lease_of(row: Mapping[str, Any] | None, attempt: int) -> Lease:
    """The hold ``attempt`` has on a run read as ``row`` (its status, attempt and
    released flag; None when the run is absent)."""
    if row is None:
        return Lease(owned=False)
    status = RunStatus(row["status"])
    owned = status is RunStatus.STARTED and row["attempt"] == attempt and not row["released"]
    return Lease(owned=owned, cancelled=status is RunStatus.REVOKED, status=status)


def profile_of(kind: ProfileKind, stored: StoredProfile) -> Profile | None:
    """A profile as a store keeps it (JSON text, or a document) as its model; None for None.

    Raises:
      pydantic.ValidationError: it no longer validates (``podflow.profiles`` names it).
    """
    if stored is None:
        return None
    model = PROFILE_MODELS[kind]
    return model.model_validate_json(stored) if isinstance(stored, str | bytes) else model.model_validate(stored)


@dataclass(frozen=True, slots=True)
class Claimed:
    """What :meth:`Store.claim_execution` hands the runner: the run as the claim left
    it (STARTED, by the new ``attempt``) and what its request names, read with the
    claim: each profile as stored (:func:`profile_of` reads it; None when it is gone)
    and the sources that still exist, in the run's order."""

    run: Run
    profiles: Mapping[ProfileKind, StoredProfile]
    sources: tuple[Source, ...]

    @property
    def attempt(self) -> int:
        return self.run.attempt


def finish_status(status: RunStatus | str) -> RunStatus:
    """``status`` as the end of an execution, which :meth:`Store.finish` writes.

    Raises:
      ValueError: not SUCCESS or FAILURE (REVOKED is ``cancel``'s alone).
    """
    status = RunStatus(status)
    if status not in (RunStatus.SUCCESS, RunStatus.FAILURE) or not can_transition(RunStatus.STARTED, status):
        raise ValueError(f"finish() ends a run in SUCCESS or FAILURE, not {status}")
    return status


def name_key(episode_name: str) -> str:
    """What name search compares: the episode name case-folded (any script, any case)."""
    return episode_name.casefold()


def prefix_range(prefix: str) -> tuple[str, str]:
    """``[low, high)``: every string that starts with ``prefix`` in code point order,
    so a prefix search is a range of a plain B-tree index (SQLite's BINARY
    collation, PostgreSQL's ``COLLATE "C"``, MongoDB's default)."""
    last = prefix[-1]
    bump = chr(ord(last) + 1) if ord(last) < 0x10FFFF else last
    return prefix, prefix[:-1] + bump


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing shows (every condition given must hold). Each one is
    served by an index (see the layout above); the listing stays newest first.

    ``search`` matches the start of the run id, or of the episode name in any
    case (``"weekly"`` finds "Weekly digest"); a single search is one prefix
    range per index, never a scan. ``created_after`` is inclusive,
    ``created_before`` exclusive.
    """

    status: RunStatus | None = None
    search: str | None = None
    episode_profile: str | None = None
    speaker_profile: str | None = None
    error_type: str | None = None
    retry_of: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def with_status(self, status: RunStatus | None) -> RunFilter:
        return self if status is None else replace(self, status=status)

    @property
    def search_key(self) -> str | None:
        """The search term as :func:`name_key` folds names; None for no search."""
        term = (self.search or "").strip()
        return name_key(term) if term else None

    @property
    def search_id(self) -> str | None:
        """The search term as a run id prefix (run ids are lowercase)."""
        term = (self.search or "").strip()
        return term.lower() if term else None


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """An opaque listing cursor: the (created_at, run_id) of the last run shown."""
    return base64.urlsafe_b64encode(f"{to_ms(created_at)}:{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises: InvalidInput (field ``cursor``) when the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, run_id = raw.split(":", 1)
        return from_ms(int(ms)), run_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput("malformed cursor", field="cursor") from None


@runtime_checkable
class Store(Protocol):
    """What podflow needs from a store. Every backend passes tests/store/test_contract.py.

    Execution policy is fixed at construction (keyword-only):
    ``heartbeat_timeout_s`` (a STARTED run silent this long may be re-claimed)
    and ``max_attempts`` (no claim once this many attempts count: ``Run.attempts_counted``).

    Every method may raise :class:`podflow.errors.StoreUnavailable` when the
    backend cannot be reached.
    """

    heartbeat_timeout_s: float
    max_attempts: int
    #: the store's identity (``meta.store_id``), read when it is opened
    store_id: str

    # -- lifecycle --------------------------------------------------------------
    def ping(self) -> None:
        """Raises StoreUnavailable unless the store answers."""

    def close(self) -> None: ...

    def deferred_sync(self) -> AbstractContextManager[None]:
        """A block whose durable writes may return before they are on disk; leaving
        it waits until they are. What the caller does inside (the submit path's
        broker send) overlaps the disk flush. A no-op where a commit is durable
        when it returns (PostgreSQL, MongoDB); SQLite flushes its log meanwhile.

        Raises (on leaving): StoreUnavailable, a flush failed.
        """

    # -- run records ------------------------------------------------------------
    def create_run(self, run: Run, *, check_names: bool = False) -> tuple[Run, bool]:
        """Insert ``run``; ``(run, True)``. If its idempotency key is taken,
        insert nothing and return ``(existing_run, False)``.

        With ``check_names``, the insert is conditional on the profiles and sources
        the run names existing, checked in the same statement on SQL stores.

        Raises:
          NamesMissing: ``check_names``, and one of them does not exist (nothing inserted).
        """

    def get_run(self, run_id: str) -> Run | None: ...

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        """The runs of ``run_ids`` that exist, by run_id, in one read (what the API's
        shared Server-Sent Events poller asks for every run watched)."""

    def get_run_by_message_id(self, message_id: str) -> Run | None: ...

    def get_run_by_idempotency_key(self, key: str) -> Run | None:
        """The run made with Idempotency-Key ``key`` (at most one: the key is unique)."""

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        where: RunFilter | None = None,
    ) -> RunPage:
        """Newest first, those ``where`` keeps (``status`` narrows it further).
        Raises InvalidInput (field ``cursor``) for a bad cursor."""

    def delete_run(self, run_id: str) -> bool:
        """Delete the run unless it is STARTED. False: absent or STARTED."""

    def count_by_status(self) -> dict[RunStatus, int]: ...

    def oldest_due_pending_at(self, *, now: datetime) -> datetime | None:
        """When the PENDING run asked to start that has waited longest became due:
        its ``created_at``, or a scheduled run's ``start_at``. A run scheduled for
        after ``now`` is not waiting yet, and drafts made with ``POST /runs`` and
        never started do not count. Reads the PENDING runs asked to start (a backlog), not the table."""

    # -- dispatch bookkeeping (transactional outbox) ------------------------------
    def request_start(
        self, run_id: str, *, message_id: str | None, now: datetime, outbox_at: datetime | None = None
    ) -> Run | None:
        """PENDING and never requested → ``outbox_at`` (``now`` if None; later for a
        run held until its schedule, :func:`podflow.dispatch.outbox.hand_over_at`)
        and ``message_id`` if the run has none. None if the run is absent, not
        PENDING, or its start was already requested."""

    def mark_enqueued(self, run_id: str, *, now: datetime) -> bool:
        """The message is with the broker: ``enqueued_at = now``, outbox cleared."""

    def mark_enqueued_many(self, sent: Mapping[str, str | None], *, now: datetime) -> int:
        """:meth:`mark_enqueued` for many runs in one statement: ``sent`` maps each
        run_id to the message the broker accepted, and a run whose current message
        is another one now (re-sent since) is left in the outbox (None: any message;
        a run without a current message takes any).
        How many runs were marked."""

    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        """Record why the enqueue failed; the run stays in the outbox for the sweep."""

    # -- execution (fenced by attempt) -------------------------------------------
    def claim(self, run_id: str, *, now: datetime) -> int | None:
        """PENDING, or STARTED and (released or heartbeat older than the timeout)
        with attempts left → STARTED with attempt + 1; returns that attempt.
        None when the run is absent, terminal, or held by a live attempt."""

    def claim_execution(self, run_id: str, *, now: datetime) -> Claimed | None:
        """:meth:`claim`, giving back the claimed run with the profiles and sources it
        names (one statement on SQL stores: everything the runner needs to start)."""

    def heartbeat(self, run_id: str, attempt: int, *, now: datetime) -> Lease:
        """Refresh the heartbeat if ``attempt`` still owns the run."""

    def lease(self, run_id: str, attempt: int) -> Lease:
        """What ``attempt``'s hold on the run is now, read only (no heartbeat)."""

    def heartbeat_many(
        self, leases: Mapping[str, int], *, now: datetime, progress: Mapping[str, Progress] | None = None
    ) -> dict[str, Lease]:
        """:meth:`heartbeat` for many ``run_id -> attempt``, and :meth:`set_progress`
        for those of them in ``progress`` (others there are ignored), each fenced by
        its own attempt, in a bounded number of round trips whatever the number of
        runs (one batched write, and one read of the leases it missed). A run's
        lease in the reply is what a single heartbeat would have said."""

    def set_progress(self, run_id: str, attempt: int, progress: Progress, *, now: datetime) -> Lease:
        """Record progress (and a heartbeat) if ``attempt`` still owns the run."""

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
        """The attempt gives the run up for a retry: it stays STARTED, ``released``,
        claimable at once by the next attempt, with ``error`` (None: the attempt did
        not fail, e.g. its worker stopped) and the history ``reason`` (default
        ``released for retry: <error type>``). ``counted=False`` (its worker stopped:
        no fault of the run's) gives the attempt back: it no longer counts toward
        ``max_attempts`` (``Run.attempts_counted``). False if ``attempt`` no longer owns it."""

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
        """STARTED by this very attempt → SUCCESS or FAILURE. None otherwise:
        a late or stale attempt never overwrites."""

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
        """:meth:`finish`, the same write, without reading the run back (the runner's
        path): whether this attempt's outcome was written."""

    def cancel(self, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run | None:
        """Any non-terminal state → REVOKED. None if absent or already terminal."""

    # -- sweep: bulk, index-backed, cost grows with the matches -------------------
    def fail_started_before(
        self, *, started_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        """STARTED runs whose current attempt started before the cutoff → FAILURE."""

    def fail_lost(
        self, *, heartbeat_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        """STARTED runs silent since the cutoff with no attempts left → FAILURE."""

    def release_lost(
        self, *, heartbeat_before: datetime, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[RunRef]:
        """STARTED runs held by an attempt silent since the cutoff, with attempts left
        → released (heartbeat_at = now); once per loss: a released run is not
        released again. Returns the runs released."""

    def list_outbox(self, *, requested_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        """PENDING runs whose start was requested before the cutoff and whose
        enqueue was never confirmed."""

    def list_awaiting(
        self,
        *,
        status: RunStatus,
        before: datetime,
        after: tuple[datetime, str] | None = None,
        limit: int = DEFAULT_BATCH,
    ) -> list[RunRef]:
        """Runs of ``status`` waiting for the broker to deliver their current message
        since before the cutoff: PENDING ones out of the outbox, since ``enqueued_at``,
        or STARTED ones released, since ``heartbeat_at`` (the release); each ref with
        that time as ``waiting_since``. In (waiting_since, run_id) order strictly after
        ``after`` (the last ref's), for paging, on the status's partial sweep index."""

    def redispatch(
        self, run_id: str, *, message_id: str | None, now: datetime, reason: str, outbox_at: datetime | None = None
    ) -> bool:
        """A run waiting for its message (PENDING out of the outbox, or STARTED
        released) gets a new current message, ``message_id``, and is back in the
        outbox (``outbox_at``, ``now`` if None; ``enqueued_at`` is set again when the send is
        confirmed); ``reason`` goes in its history. Recorded before the message is
        sent. False if the run is no longer waiting (claimed, ended, deleted)."""

    def fail_pending_enqueued_before(
        self, *, enqueued_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        """PENDING runs enqueued before the cutoff and never started → FAILURE."""

    # -- completion webhooks (podflow.webhooks): the obligation the end of a run wrote --
    def claim_webhooks(self, *, now: datetime, lease_until: datetime, limit: int = DEFAULT_BATCH) -> list[Run]:
        """Ended runs whose webhook is due (``webhook_due_at`` before ``now``), at most
        ``limit``: each one's next delivery attempt, leased (``webhook_due_at =
        lease_until``, ``webhook_attempts + 1``), as the run after that write. Two
        deliverers never claim the same attempt; one that dies leaves it due again at
        ``lease_until``. On the partial index of ``webhook_due_at``."""

    def record_webhook(
        self, run_id: str, attempt: int, *, delivery: WebhookDelivery, next_at: datetime | None
    ) -> bool:
        """The outcome of delivery attempt ``attempt``: ``delivery``, and the next
        attempt due at ``next_at`` (None: delivered or given up). False when that
        attempt no longer holds the delivery (a later claim took it) or the run is gone."""
    # -- retention: index-backed, cost grows with the runs deleted ------------------
    def list_ended_before(self, *, finished_before: datetime, limit: int = DEFAULT_BATCH) -> list[str]:
        """Ids of the SUCCESS, FAILURE and REVOKED runs that finished before the
        cutoff, oldest first, at most ``limit``: a range of the finished_at index,
        so the cost follows the batch, not the number of runs stored. A run whose
        completion webhook is still due (``webhook_due_at``) is not among them."""

    def delete_ended(self, run_ids: Sequence[str]) -> list[str]:
        """Delete the runs among ``run_ids`` that are terminal with no completion
        webhook due (any other is left alone); the ids deleted. The counters (``stats``) do not change.
        Callers delete a run's files first: :func:`podflow.deletion.delete_ended`."""

    # -- sources ----------------------------------------------------------------
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        """Store ``source``; if the same text (sha256) exists, return ``(existing, False)``."""

    def get_source(self, source_id: str) -> Source | None: ...

    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        """Newest first."""

    def delete_source(self, source_id: str) -> bool: ...

    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        """The ids among ``source_ids`` that do not exist, in the given order."""

    # -- profiles ---------------------------------------------------------------
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None: ...

    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        """By name."""

    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        """Raises AlreadyExists."""

    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        """Raises ProfileNotFound."""

    def delete_profile(self, kind: ProfileKind, name: str) -> bool: ...

    def seed_profiles(self, profiles: Sequence[Profile], *, now: datetime) -> list[str]:
        """Insert each bundled profile the first time it is ever seeded; never
        overwrite an existing one nor re-create a deleted one. Returns the
        names inserted now."""

    # -- monitoring: a bounded number of cheap reads ------------------------------
    def stats(self) -> StoreStats:
        """The monotonic counters (``stats``), in one read of a small table or document."""

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add ``counts`` (names from :mod:`podflow.store.counters`) to the counters, at once."""

    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        """Add one sweep's report (rule -> runs, as ``SweepReport.as_dict()``) to the
        counters and make ``now`` the last sweep time, unless a later one is recorded."""

    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        """Runs finished at or after ``since``, counted per UTC minute and terminal
        status, oldest first. Reads the ``finished_at`` index: the cost follows the
        runs finished in the window, not the size of ``runs``."""

    # -- leases -----------------------------------------------------------------
    def acquire_lease(self, name: str, *, holder: str, now: datetime, ttl_s: float) -> bool:
        """Take or renew the named lease until ``now + ttl_s``. False if another
        holder's lease is still valid."""

    def release_lease(self, name: str, *, holder: str) -> None: ...
