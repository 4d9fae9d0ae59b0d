"""The documents podflow keeps: runs, sources and profiles (pydantic models).

Timestamps are aware UTC datetimes at millisecond precision and serialize to
ISO 8601. Paths in :class:`RunResult` are relative to PODFLOW_DATA_DIR, so a
shared data directory may be mounted at different places on different hosts.

Text is stripped of surrounding whitespace *before* its length and pattern are
checked (``str_strip_whitespace``), in every model: what validates is what is
stored, and it validates again when read back (a whitespace-only ``personality``
is refused, never stored as ``""``). Only :data:`Verbatim` text, a document's
own, is kept exactly as given.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .states import RunStatus
from .timeutil import utc

__all__ = [
    "FINGERPRINT_FIELDS",
    "FINGERPRINT_VERSION",
    "EpisodeProfile",
    "ErrorInfo",
    "Lease",
    "PRIORITIES",
    "Priority",
    "Progress",
    "Run",
    "RunPage",
    "RunRef",
    "RunRequest",
    "RunResult",
    "Source",
    "SourceInfo",
    "Speaker",
    "SpeakerProfile",
    "StageCalls",
    "Transition",
    "WebhookDelivery",
    "WebhookOutcome",
    "Verbatim",
    "field_name",
    "new_run_id",
    "new_source_id",
    "problems",
]

UtcDatetime = Annotated[datetime, AfterValidator(utc)]
Mode = Literal["queue", "thread"]
#: a run's priority band: a queued ``high`` run starts before ``normal`` ones
#: submitted earlier, and ``normal`` before ``low`` (:mod:`podflow.worker.bands`)
Priority = Literal["high", "normal", "low"]
#: the bands, first served first
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
#: text kept exactly as given, surrounding whitespace included: a document's own
#: text (a Markdown source may well start with an indented code block)
Verbatim = Annotated[str, StringConstraints(strip_whitespace=False)]

_RUN_ID_RE = re.compile(r"^run_[0-9a-f]{32}$")
PROFILE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: a BCP 47 language tag: a language subtag, then script, region or variant subtags
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
#: a provider's model name (``gpt-4o-mini``, ``qwen2.5:7b``, ``speaches-ai/Kokoro-82M-v1.0-ONNX``)
MODEL_PATTERN = r"^\S+$"


def new_run_id() -> str:
    """An unguessable run id: ``run_`` and 128 random bits in hex."""
    return "run_" + secrets.token_hex(16)


def new_source_id() -> str:
    return "src_" + secrets.token_hex(12)


def is_run_id(value: str) -> bool:
    return bool(_RUN_ID_RE.match(value))


#: What a request's fingerprint (``Run.request_hash``, the idempotency check)
#: covers, by version. A published version never changes: runs stored under it
#: are compared with it. A field added to RunRequest later counts only where a
#: request sets it to something other than its default, so every request that
#: does not use it keeps the fingerprint it had, and no stored key turns into
#: a conflict. Version 1's hashes are bare hex (as stored before versions were
#: named); a later version's are ``v<n>:<hex>``.
FINGERPRINT_FIELDS: dict[int, tuple[str, ...]] = {
    1: ("episode_profile", "speaker_profile", "episode_name", "source_ids", "briefing_suffix"),
}
FINGERPRINT_VERSION = 1


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a field path: ``("speakers", 1, "voice")`` → ``speakers[1].voice``."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name


def problems(exc: ValidationError, *, where: str = "body") -> list[dict[str, Any]]:
    """Each problem of ``exc`` as ``{field, message}`` (``where`` names the whole input)."""
    return [
        {"field": field_name(tuple(error["loc"])) or where, "message": _message(error)}
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty or only whitespace"
    if error["type"] == "value_error":  # a validator's own words, without pydantic's prefix
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- runs -----------------------------------------------------------------------


class RunRequest(_Model):
    """What a client asks for. Validated before anything is stored or enqueued."""

    episode_profile: str = Field(min_length=1, max_length=64)
    speaker_profile: str = Field(min_length=1, max_length=64)
    episode_name: str = Field(min_length=1, max_length=200)
    source_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=50)
    briefing_suffix: str | None = Field(default=None, max_length=4000)
    #: the run's band: queued high runs start before normal ones, normal before low
    priority: Priority = "normal"
    #: start no earlier than this (ISO 8601 with a zone); the run stays PENDING,
    #: scheduled, until then (checked against the clock by ``lifecycle.submit``)
    start_at: AwareDatetime | None = None
    #: where the completion webhook goes (``http(s)://``); None: PODFLOW_WEBHOOK_URL, if set
    callback_url: str | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("start_at")
    @classmethod
    def _start_at_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("source_ids")
    @classmethod
    def _unique_sources(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a source id")
        return value

    def fingerprint(self, version: int = FINGERPRINT_VERSION) -> str:
        """A stable hash of the request, to tell an idempotent retry from a new body:
        the fields of :data:`FINGERPRINT_FIELDS` ``[version]``, and any other field
        set to something other than its default.

        Raises:
          KeyError: an unknown version.
        """
        covered = FINGERPRINT_FIELDS[version]
        data = self.model_dump(mode="json")
        fields = {name: data[name] for name in covered}
        fields |= {k: v for k, v in self.model_dump(mode="json", exclude_defaults=True).items() if k not in covered}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return digest if version == 1 else f"v{version}:{digest}"

    def matches(self, request_hash: str | None) -> bool:
        """Whether ``request_hash`` (a stored run's) is this request's fingerprint,
        under the version it was made with."""
        if request_hash is None:
            return False
        prefix, sep, _ = request_hash.partition(":")
        version = int(prefix[1:]) if sep and prefix[:1] == "v" and prefix[1:].isdigit() else 1
        return version in FINGERPRINT_FIELDS and self.fingerprint(version) == request_hash


class Progress(_Model):
    stage: str
    percent: float = Field(ge=0, le=100)
    message: str = ""


class ErrorInfo(_Model):
    """Why a run failed. ``type`` is machine-readable (e.g. ``soft_time_limit``,
    ``time_limit``, ``worker_lost``, ``expired``, or an exception class name)."""

    type: str
    message: str


class StageCalls(_Model):
    """One stage's results in the attempt that finished the run: ``computed`` (a
    provider stage: one call each, re-asks and in-attempt retries aside) or
    ``reused`` from a checkpoint of an earlier attempt or of the retried run."""

    computed: int = Field(default=0, ge=0)
    reused: int = Field(default=0, ge=0)


class RunResult(_Model):
    """What a successful run produced; paths are relative to PODFLOW_DATA_DIR."""

    audio_path: str | None = None
    transcript_path: str | None = None
    outline_path: str | None = None
    duration_s: float | None = None
    #: per stage (``outline``, ``transcript``, ``audio``...): results computed vs reused
    stages: dict[str, StageCalls] = Field(default_factory=dict)
    #: of the reused results, those taken from the run this one retries (``retry_of``)
    reused_from_retried: int = Field(default=0, ge=0)


WebhookOutcome = Literal["delivered", "retrying", "expired"]


class WebhookDelivery(_Model):
    """What became of a run's completion webhook so far (the last attempt's outcome)."""

    #: delivered (a 2xx), retrying (the last attempt failed; another is due), or
    #: expired (PODFLOW_WEBHOOK_MAX_AGE passed without a 2xx: given up)
    outcome: WebhookOutcome
    last_attempt_at: UtcDatetime
    #: the receiver's HTTP status (None: no reply, see ``last_error``)
    last_status: int | None = None
    last_error: str | None = None
    #: the start of the receiver's reply body (never more than a short excerpt)
    reply_excerpt: str | None = None
    delivered_at: UtcDatetime | None = None


class Transition(_Model):
    """One entry of a run's history, appended by the write that changed its status."""

    status: RunStatus
    at: UtcDatetime
    attempt: int
    reason: str


class Run(_Model):
    """A podcast run, as stored."""

    run_id: str
    status: RunStatus = RunStatus.PENDING
    # the request
    episode_profile: str
    speaker_profile: str
    episode_name: str
    source_ids: list[str]
    briefing_suffix: str | None = None
    priority: Priority = "normal"
    #: scheduled: not started before this time (None: as soon as possible)
    start_at: UtcDatetime | None = None
    # execution
    mode: Mode = "queue"
    attempt: int = 0
    #: the attempts that count toward PODFLOW_MAX_ATTEMPTS: ``attempt`` (which numbers
    #: them, and fences their writes) less those released because their worker stopped
    #: (a deploy, a scale-down: no fault of the run's)
    attempts_counted: int = 0
    created_at: UtcDatetime
    updated_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    heartbeat_at: UtcDatetime | None = None
    #: no execution holds the run: it may be re-claimed at once (set when an
    #: attempt gives up for a retry or the worker stops, or when the sweep finds it lost)
    released: bool = False
    # dispatch bookkeeping (a transactional outbox)
    message_id: str | None = None
    #: the message that carries the run now: ``message_id`` until the sweep
    #: re-sends a run whose message the broker lost (Dramatiq's own retries keep it)
    current_message_id: str | None = None
    #: start was requested at this time and the enqueue is not yet confirmed
    outbox_at: UtcDatetime | None = None
    enqueued_at: UtcDatetime | None = None
    enqueue_error: str | None = None
    # outcome
    progress: Progress | None = None
    error: ErrorInfo | None = None
    result: RunResult | None = None
    history: list[Transition] = Field(default_factory=list)
    # provenance
    idempotency_key: str | None = None
    request_hash: str | None = None
    retry_of: str | None = None
    # the completion webhook: an obligation written by the transition that ends the run
    #: where its event goes (the request's, else PODFLOW_WEBHOOK_URL at submit); None: no webhook
    callback_url: str | None = None
    #: the next delivery attempt is due at this time (set by the terminal transition;
    #: pushed forward by each attempt's lease and retry; cleared once delivered or expired)
    webhook_due_at: UtcDatetime | None = None
    #: delivery attempts started (the fence of their outcome)
    webhook_attempts: int = 0
    webhook: WebhookDelivery | None = None

    @classmethod
    def new(
        cls,
        request: RunRequest,
        *,
        now: datetime,
        mode: Mode = "queue",
        run_id: str | None = None,
        idempotency_key: str | None = None,
        retry_of: str | None = None,
    ) -> Run:
        """A fresh PENDING run for ``request``, its history opened at ``now``."""
        return cls(
            run_id=run_id or new_run_id(),
            **request.model_dump(),
            mode=mode,
            created_at=now,
            updated_at=now,
            history=[Transition(status=RunStatus.PENDING, at=now, attempt=0, reason="created")],
            idempotency_key=idempotency_key,
            request_hash=request.fingerprint(),
            retry_of=retry_of,
        )

    @property
    def request(self) -> RunRequest:
        """What the run was asked to do, and at which priority; not when (a retry
        of a scheduled run starts at once)."""
        return RunRequest(
            episode_profile=self.episode_profile,
            speaker_profile=self.speaker_profile,
            episode_name=self.episode_name,
            source_ids=self.source_ids,
            briefing_suffix=self.briefing_suffix,
            priority=self.priority,
            callback_url=self.callback_url,
        )

    @property
    def is_terminal(self) -> bool:
        from .states import is_terminal

        return is_terminal(self.status)


class RunPage(_Model):
    runs: list[Run]
    next_cursor: str | None = None


class RunRef(_Model):
    """Just enough of a run to dispatch it (what the sweep's bulk queries return)."""

    run_id: str
    attempt: int
    mode: Mode
    message_id: str | None = None
    #: the id of the message that carries the run now (what the broker is asked about)
    current_message_id: str | None = None
    #: its band (whose queue carries its message) and, scheduled, its start time
    priority: Priority = "normal"
    start_at: UtcDatetime | None = None
    #: set by ``Store.list_awaiting``: since when it waits for its message (the page
    #: cursor is ``(waiting_since, run_id)``)
    waiting_since: UtcDatetime | None = None


class Lease(_Model):
    """What a heartbeat (or progress write) learns about the attempt's hold on its run.

    ``owned`` is False once the attempt lost the run: it was cancelled
    (``cancelled``), finished or failed by someone else, or re-claimed.
    """

    owned: bool
    cancelled: bool = False
    status: RunStatus | None = None


# -- sources --------------------------------------------------------------------


class SourceInfo(_Model):
    """A source document's metadata (what listings return)."""

    source_id: str
    title: str
    filename: str | None = None
    content_type: Literal["text/plain", "text/markdown", "text/html"]
    byte_size: int
    sha256: str
    created_at: UtcDatetime


class Source(SourceInfo):
    """A source document with its text (HTML already reduced to text)."""

    text: Verbatim

    def info(self) -> SourceInfo:
        return SourceInfo(**self.model_dump(exclude={"text"}))


# -- profiles -------------------------------------------------------------------


class _Profile(_Model):
    """A profile. Its validation errors carry its name (``ctx["profile"]``), so that
    reading a store that holds a profile this version refuses (one written by an
    older version) can say which profile it is (:func:`podflow.profiles.read_profiles`)."""

    @model_validator(mode="wrap")
    @classmethod
    def _errors_name_the_profile(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str):
                raise
            errors = [{**error, "ctx": {**error.get("ctx", {}), "profile": name}} for error in exc.errors()]
            try:
                named = ValidationError.from_exception_data(exc.title, errors)  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError):  # an error pydantic cannot rebuild: as it is
                raise exc from None
            raise named from None


class Speaker(_Model):
    name: str = Field(min_length=1, max_length=40)
    voice: str = Field(min_length=1, max_length=64)
    personality: str = Field(min_length=1, max_length=200)

    @field_validator("name", "personality")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if len(value.splitlines()) > 1:
            raise ValueError("must be one line")
        return value


class SpeakerProfile(_Profile):
    name: str = Field(pattern=PROFILE_NAME_PATTERN)
    description: str = Field(default="", max_length=500)
    speakers: list[Speaker] = Field(min_length=1, max_length=4)
    #: the TTS model for this profile's voices (PODFLOW_TTS=openai); None = PODFLOW_TTS_MODEL
    tts_model: str | None = Field(default=None, min_length=1, max_length=200, pattern=MODEL_PATTERN)

    @model_validator(mode="after")
    def _unique_speakers(self) -> SpeakerProfile:
        names = [s.name.casefold() for s in self.speakers]
        if len(set(names)) != len(names):
            raise ValueError("speaker names must be unique")
        return self


class EpisodeProfile(_Profile):
    name: str = Field(pattern=PROFILE_NAME_PATTERN)
    description: str = Field(default="", max_length=500)
    num_segments: int = Field(ge=1, le=12)
    default_briefing: str = Field(default="", max_length=4000)
    words_per_segment: int = Field(default=150, ge=20, le=2000)
    #: BCP 47 tag of the episode's language (``en``, ``zh``, ``pt-BR``); in Chinese and
    #: Japanese ``words_per_segment`` counts characters
    language: str = Field(default="en", max_length=35, pattern=LANGUAGE_PATTERN)
    #: the LLM for this profile's episodes (PODFLOW_LLM=openai); None = PODFLOW_LLM_MODEL
    llm_model: str | None = Field(default=None, min_length=1, max_length=200, pattern=MODEL_PATTERN)
