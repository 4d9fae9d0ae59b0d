"""podflow's configuration: the one place that reads the environment.

Every setting is an environment variable (or a line in ``.env``); the field's
alias is the variable's name. Library classes never read the environment:
the entry points (CLI, API app, actors module, scheduler) call
:func:`load_settings` once and pass plain values down.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .webhooks.signing import is_webhook_secret
from .webhooks.targets import WebhookTargets, host_allowed

__all__ = [
    "OUTBOX_GRACE_S",
    "OLD_SETTINGS",
    "OldSetting",
    "Settings",
    "env_var",
    "load_settings",
    "old_setting_notes",
    "unknown_variables",
]

_MiB = 1024 * 1024
#: PODFLOW_STORE_URL schemes, by store kind
_STORE_SCHEMES = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "sqlite": "sqlite",
    "mongodb": "mongo",
    "mongodb+srv": "mongo",
}
_SECRETS = ("PODFLOW_API_TOKEN", "PODFLOW_LLM_API_KEY", "PODFLOW_TTS_API_KEY", "PODFLOW_WEBHOOK_SECRET")
_GENERATOR_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_QUEUE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")


#: the furthest a time setting may reach from now (a datetime cannot go much further)
_HUNDRED_YEARS_S = 100 * 365 * 86400.0
#: how long the sweep leaves a run in the outbox to the request still sending it
#: (``SweepPolicy.outbox_grace_s``); a run held until its schedule waits this much more
OUTBOX_GRACE_S = 10.0
#: PODFLOW_SCHEDULE_HORIZON unless a long sweep interval needs more
DEFAULT_SCHEDULE_HORIZON_S = 3600.0


def _shortest_horizon_s(sweep_interval_s: float) -> float:
    """The shortest schedule horizon in which a sweep always sends a held run before
    its start: two intervals (one sweep may be skipped) and the outbox grace."""
    return 2 * sweep_interval_s + OUTBOX_GRACE_S


def _var(name: str, *, default: Any, description: str, **kw: Any) -> Any:
    """A field read from the environment variable ``name`` (and only that name)."""
    return Field(
        default,
        validation_alias=AliasChoices(name),
        description=description,
        json_schema_extra={"env": name},
        **kw,
    )


class Settings(BaseSettings):
    """All of podflow's settings, validated. Construct with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        # "inf" or "nan" in a number is a typo or a trap: never a setting's value
        allow_inf_nan=False,
    )

    # -- connections ------------------------------------------------------------
    broker_url: str = _var(
        "PODFLOW_BROKER_URL",
        default="redis://localhost:6379/0",
        description="Dramatiq broker: redis://, rediss://, amqp:// or amqps://",
    )
    queue_name: str = _var(
        "PODFLOW_QUEUE",
        default="podcast",
        description="the broker queue runs go through; deployments sharing one broker need one each",
    )
    result_backend: str = _var(
        "PODFLOW_RESULT_BACKEND",
        default="",
        description="optional Redis URL for Dramatiq results; empty = results off",
    )
    store_url: str = _var(
        "PODFLOW_STORE_URL",
        default="",
        description="the store: postgresql://..., sqlite:///path or mongodb://...;"
        " empty = MONGODB_URI if set, else SQLite under PODFLOW_DATA_DIR",
    )
    mongodb_uri: str = _var(
        "MONGODB_URI",
        default="",
        description="MongoDB connection string (the same as PODFLOW_STORE_URL=mongodb://...)",
    )
    mongodb_database: str = _var(
        "MONGODB_DATABASE",
        default="podcast_db",
        description="MongoDB database name when the store URL names none (the old module's setting)",
        min_length=1,
    )
    data_dir: Path = _var(
        "PODFLOW_DATA_DIR",
        default=Path("var"),
        description="SQLite file, audio output and local redis data",
    )

    # -- execution --------------------------------------------------------------
    mode: Literal["queue", "thread"] = _var(
        "PODFLOW_MODE",
        default="queue",
        description="queue = Dramatiq workers; thread = run inside the API process",
    )
    concurrency: int = _var(
        "PODFLOW_CONCURRENCY",
        default=4,
        ge=1,
        le=512,
        description="worker threads per process (or the thread-mode pool size)",
    )
    worker_processes: int = _var(
        "PODFLOW_WORKER_PROCESSES",
        default=1,
        ge=1,
        le=256,
        description="worker processes started by `podflow worker`",
    )
    soft_time_limit_s: float = _var(
        "PODFLOW_SOFT_TIME_LIMIT",
        default=1800.0,
        gt=0,
        description="seconds before a running generation is interrupted",
    )
    time_limit_s: float = _var(
        "PODFLOW_TIME_LIMIT",
        default=3600.0,
        gt=0,
        description="seconds after started_at at which the sweep fails a STARTED run",
    )
    heartbeat_interval_s: float = _var(
        "PODFLOW_HEARTBEAT_INTERVAL",
        default=10.0,
        gt=0,
        description="seconds between heartbeats of a running run",
    )
    heartbeat_timeout_s: float = _var(
        "PODFLOW_HEARTBEAT_TIMEOUT",
        default=120.0,
        gt=0,
        description="a STARTED run silent this long is considered lost",
    )
    max_attempts: int = _var(
        "PODFLOW_MAX_ATTEMPTS",
        default=3,
        ge=1,
        le=100,
        description="executions of one run before it fails for good (one stopped with its worker does not count)",
    )
    pending_timeout_s: float = _var(
        "PODFLOW_PENDING_TIMEOUT",
        default=86400.0,
        gt=0,
        description="an enqueued run not started within this many seconds expires",
    )
    max_schedule_ahead_s: float = _var(
        "PODFLOW_MAX_SCHEDULE_AHEAD",
        default=30 * 86400.0,
        gt=0,
        le=_HUNDRED_YEARS_S,  # a bound the clock's arithmetic can add (and not inf)
        description="a run's start_at may be at most this many seconds ahead",
    )
    sweep_interval_s: float = _var(
        "PODFLOW_SWEEP_INTERVAL",
        default=300.0,
        gt=0,
        description="seconds between sweeps of the scheduler",
    )
    schedule_horizon_s: float = _var(
        "PODFLOW_SCHEDULE_HORIZON",
        default=None,  # 3600, or more after a long sweep interval: _default_horizon
        validate_default=True,
        gt=0,
        le=_HUNDRED_YEARS_S,
        description="a run scheduled further ahead stays in the store until this many seconds before its start,"
        " when the sweep sends it (default 3600, at least twice PODFLOW_SWEEP_INTERVAL plus 10 s)",
    )
    retry_backoff_s: float = _var(
        "PODFLOW_RETRY_BACKOFF",
        default=15.0,
        gt=0,
        description="seconds before the first retry of a transient failure; doubles each retry",
    )
    retry_backoff_max_s: float = _var(
        "PODFLOW_RETRY_BACKOFF_MAX",
        default=600.0,
        gt=0,
        description="longest delay between two retries of a transient failure",
    )
    checkpoint_ttl_s: float = _var(
        "PODFLOW_CHECKPOINT_TTL",
        default=604800.0,
        gt=0,
        description="seconds a FAILURE or REVOKED run's checkpoints are kept for a retry before the sweep removes them",
    )
    retention_days: float = _var(
        "PODFLOW_RETENTION_DAYS",
        default=0.0,
        ge=0,
        le=_HUNDRED_YEARS_S / 86400,  # now minus more (or inf) is no date: the sweep would fail
        description="days an ended run (SUCCESS, FAILURE, REVOKED) is kept after it finished before the sweep "
        "deletes it with its files; 0 keeps runs forever",
    )

    # -- completion webhooks ----------------------------------------------------
    webhook_url: str = _var(
        "PODFLOW_WEBHOOK_URL",
        default="",
        description="where every run's completion webhook goes unless its callback_url says otherwise;"
        " empty = only runs with a callback_url",
    )
    webhook_secret: SecretStr = _var(
        "PODFLOW_WEBHOOK_SECRET",
        default=SecretStr(""),
        description="the webhooks' signing key, whsec_ and base64 (Standard Webhooks); empty = sent unsigned",
    )
    webhook_allowed_hosts: str = _var(
        "PODFLOW_WEBHOOK_ALLOWED_HOSTS",
        default="",
        description="comma-separated hosts webhooks may go to (*.example.com for subdomains); empty = any",
    )
    webhook_timeout_s: float = _var(
        "PODFLOW_WEBHOOK_TIMEOUT",
        default=10.0,
        gt=0,
        le=300,
        description="seconds one webhook POST may take",
    )
    webhook_retry_backoff_s: float = _var(
        "PODFLOW_WEBHOOK_RETRY_BACKOFF",
        default=5.0,
        gt=0,
        description="seconds before a failed webhook is sent again; doubles each retry, at most 10 minutes",
    )
    webhook_max_age_s: float = _var(
        "PODFLOW_WEBHOOK_MAX_AGE",
        default=86400.0,
        gt=0,
        description="seconds after the run ended that a webhook is retried before it is given up (expired)",
    )
    public_url: str = _var(
        "PODFLOW_PUBLIC_URL",
        default="",
        description="the API's URL as clients reach it (https://podflow.example.com): the base of the"
        " links in webhook events; empty = paths alone",
    )

    # -- generation -------------------------------------------------------------
    generator: str = _var(
        "PODFLOW_GENERATOR",
        default="podflow.generation.builtin:generate",
        description="the generator, as module:callable",
    )
    llm: Literal["none", "openai"] = _var(
        "PODFLOW_LLM",
        default="none",
        description="who writes outline and transcript: none = the built-in extractive writer, "
        "openai = an OpenAI-compatible chat-completions endpoint",
    )
    llm_base_url: str = _var(
        "PODFLOW_LLM_BASE_URL",
        default="https://api.openai.com/v1",
        description="the LLM endpoint's base URL, ending in /v1 (Ollama: http://localhost:11434/v1)",
    )
    llm_api_key: SecretStr = _var(
        "PODFLOW_LLM_API_KEY", default=SecretStr(""), description="the LLM endpoint's API key (a bearer token)"
    )
    llm_model: str = _var(
        "PODFLOW_LLM_MODEL",
        default="gpt-4o-mini",
        min_length=1,
        description="the LLM model; an episode profile's llm_model overrides it",
    )
    llm_timeout_s: float = _var(
        "PODFLOW_LLM_TIMEOUT", default=300.0, gt=0, description="seconds one chat completion may take"
    )
    llm_max_concurrency: int = _var(
        "PODFLOW_LLM_MAX_CONCURRENCY",
        default=0,
        ge=0,
        le=10000,
        description="LLM calls in flight across every worker process and host; 0 = no cap",
    )
    llm_reasks: int = _var(
        "PODFLOW_LLM_REASKS",
        default=2,
        ge=0,
        le=5,
        description="times an unusable LLM reply is asked again (with the problem) before the run fails",
    )
    llm_source_chars: int = _var(
        "PODFLOW_LLM_SOURCE_CHARS",
        default=60_000,
        ge=1000,
        description="characters of source text sent to the LLM at most; longer sources are truncated",
    )
    tts: Literal["espeak", "openai", "none"] = _var(
        "PODFLOW_TTS",
        default="espeak",
        description="who speaks: espeak (espeak-ng), openai (an OpenAI-compatible /audio/speech endpoint), "
        "none = outline and transcript only",
    )
    tts_base_url: str = _var(
        "PODFLOW_TTS_BASE_URL",
        default="https://api.openai.com/v1",
        description="the TTS endpoint's base URL, ending in /v1 (Kokoro-FastAPI: http://localhost:8880/v1)",
    )
    tts_api_key: SecretStr = _var(
        "PODFLOW_TTS_API_KEY", default=SecretStr(""), description="the TTS endpoint's API key (a bearer token)"
    )
    tts_model: str = _var(
        "PODFLOW_TTS_MODEL",
        default="tts-1",
        min_length=1,
        description="the TTS model; a speaker profile's tts_model overrides it",
    )
    tts_timeout_s: float = _var(
        "PODFLOW_TTS_TIMEOUT",
        default=120.0,
        gt=0,
        description="seconds one turn's speech may take (an espeak-ng process or a TTS request)",
    )
    tts_max_concurrency: int = _var(
        "PODFLOW_TTS_MAX_CONCURRENCY",
        default=0,
        ge=0,
        le=10000,
        description="TTS calls in flight across every worker process and host; 0 = no cap",
    )
    tts_parallelism: int = _var(
        "PODFLOW_TTS_PARALLELISM",
        default=4,
        ge=1,
        le=64,
        description="turns one run speaks at once (espeak-ng processes or TTS requests)",
    )
    audio_format: Literal["mp3", "wav"] = _var(
        "PODFLOW_AUDIO_FORMAT", default="mp3", description="the episode file: mp3 or wav"
    )
    provider_retries: int = _var(
        "PODFLOW_PROVIDER_RETRIES",
        default=2,
        ge=0,
        le=10,
        description="in-attempt retries of a provider call after a 5xx, timeout or connection error",
    )
    provider_backoff_s: float = _var(
        "PODFLOW_PROVIDER_BACKOFF",
        default=1.0,
        gt=0,
        description="seconds before the first in-attempt retry of a provider call; doubles each retry",
    )
    provider_rate_limit_wait_s: float = _var(
        "PODFLOW_PROVIDER_RATE_LIMIT_WAIT",
        default=300.0,
        ge=0,
        description="seconds one provider call may spend waiting out 429s before the attempt gives up",
    )
    limits_url: str = _var(
        "PODFLOW_LIMITS_URL",
        default="",
        description="Redis holding the cluster-wide provider caps; empty = the broker's, when it is Redis",
    )
    max_source_bytes: int = _var(
        "PODFLOW_MAX_SOURCE_BYTES",
        default=5 * _MiB,
        ge=1,
        description="largest accepted source document, in bytes",
    )
    max_json_bytes: int = _var(
        "PODFLOW_MAX_JSON_BYTES",
        default=_MiB,
        ge=1024,
        description="largest accepted JSON request body, in bytes (a bigger source goes up as a multipart file)",
    )

    # -- API --------------------------------------------------------------------
    api_host: str = _var("PODFLOW_API_HOST", default="127.0.0.1", description="API bind address")
    api_port: int = _var("PODFLOW_API_PORT", default=8000, ge=1, le=65535, description="API port")
    api_token: SecretStr = _var(
        "PODFLOW_API_TOKEN",
        default=SecretStr(""),
        description="bearer token required by /api/ routes; empty = no auth",
    )
    worker_metrics_port: int | None = _var(
        "PODFLOW_WORKER_METRICS_PORT",
        default=None,
        ge=1,
        le=65535,
        description="port of the workers' Prometheus exporter; empty = off",
    )
    worker_metrics_host: str = _var(
        "PODFLOW_WORKER_METRICS_HOST",
        default="127.0.0.1",
        description="bind address of the workers' Prometheus exporter",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _var(
        "PODFLOW_LOG_LEVEL", default="INFO", description="log level of every podflow process"
    )
    log_format: Literal["text", "json"] = _var(
        "PODFLOW_LOG_FORMAT",
        default="text",
        description="text, or json: one JSON object per line (time, level, logger, message, and run_id,"
        " attempt, message_id on every line about a run)",
    )

    # -- validators -------------------------------------------------------------
    @field_validator("*")
    @classmethod
    def _durations_bounded(cls, value: Any, info: ValidationInfo) -> Any:
        """Every duration in seconds is at most 100 years: the clock's arithmetic
        (now + an interval, a timer) fails past that, at start-up or in a sweep."""
        duration = bool(info.field_name and info.field_name.endswith("_s")) and isinstance(value, float)
        if duration and value > _HUNDRED_YEARS_S:
            raise ValueError(f"a duration of at most 100 years ({_HUNDRED_YEARS_S:.0f} s)")
        return value

    @field_validator("schedule_horizon_s", mode="before")
    @classmethod
    def _default_horizon(cls, value: Any, info: ValidationInfo) -> Any:
        """Unset: an hour, or the shortest horizon PODFLOW_SWEEP_INTERVAL allows if
        that is longer (a long interval set before the horizon existed still starts)."""
        if value is not None:
            return value
        interval_s = info.data.get("sweep_interval_s")  # absent if it was refused
        shortest_s = 0.0 if interval_s is None else _shortest_horizon_s(interval_s)
        return max(DEFAULT_SCHEDULE_HORIZON_S, shortest_s)

    @field_validator("worker_metrics_port", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "amqp://", "amqps://")):
            raise ValueError("must start with redis://, rediss://, amqp:// or amqps://")
        return value

    @field_validator("queue_name")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not _QUEUE_RE.match(value):
            raise ValueError("must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or '_'")
        if value.endswith((".DQ", ".XQ")):
            raise ValueError("must not end in .DQ or .XQ (Dramatiq's delay and dead-letter queues)")
        return value

    @field_validator("result_backend")
    @classmethod
    def _result_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or a redis:// URL")
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongo_scheme(cls, value: str) -> str:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be empty or start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("store_url")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        scheme = value.partition("://")[0].lower() if "://" in value else value
        if value and scheme not in _STORE_SCHEMES:
            raise ValueError(
                f"unknown store scheme {scheme!r}: use postgresql://user@host/db, sqlite:///path or mongodb://host"
            )
        if scheme == "sqlite" and not value.removeprefix("sqlite://").removeprefix("/"):
            raise ValueError("a sqlite:// URL needs a path: sqlite:///relative/file or sqlite:////absolute/file")
        return value

    @field_validator("limits_url")
    @classmethod
    def _limits_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or a redis:// URL")
        return value

    @field_validator("llm_base_url", "tts_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL ending in /v1")
        return value.rstrip("/")

    @field_validator("webhook_url", "public_url")
    @classmethod
    def _optional_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http:// or https:// URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and not is_webhook_secret(value.get_secret_value()):
            raise ValueError("must be whsec_ followed by base64 (e.g. whsec_$(openssl rand -base64 32))")
        return value

    @field_validator("generator")
    @classmethod
    def _generator_ref(cls, value: str) -> str:
        if not _GENERATOR_RE.match(value):
            raise ValueError("must look like package.module:callable")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.store_url and self.mongodb_uri and self.store_url != self.mongodb_uri:
            raise ValueError("PODFLOW_STORE_URL and MONGODB_URI name different stores: set only one")
        if self.time_limit_s <= self.soft_time_limit_s:
            raise ValueError(
                "PODFLOW_TIME_LIMIT must be greater than PODFLOW_SOFT_TIME_LIMIT "
                f"(got {self.time_limit_s:g} <= {self.soft_time_limit_s:g})"
            )
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError(
                "PODFLOW_HEARTBEAT_TIMEOUT must be greater than PODFLOW_HEARTBEAT_INTERVAL "
                f"(got {self.heartbeat_timeout_s:g} <= {self.heartbeat_interval_s:g})"
            )
        if self.schedule_horizon_s < _shortest_horizon_s(self.sweep_interval_s):
            raise ValueError(
                "PODFLOW_SCHEDULE_HORIZON must be at least twice PODFLOW_SWEEP_INTERVAL plus "
                f"{OUTBOX_GRACE_S:g} s, so that a sweep sends a scheduled run before it is due "
                f"(got {self.schedule_horizon_s:g} < 2 x {self.sweep_interval_s:g} + {OUTBOX_GRACE_S:g})"
            )
        if self.webhook_url and not host_allowed(self.webhook_url, self.webhook_hosts):
            raise ValueError("PODFLOW_WEBHOOK_URL names a host that PODFLOW_WEBHOOK_ALLOWED_HOSTS does not allow")
        capped = [
            f"{env_var(name)}={getattr(self, name)}"
            for name in ("llm_max_concurrency", "tts_max_concurrency")
            if getattr(self, name)
        ]
        if capped and self.mode == "queue" and not self.caps_url:
            raise ValueError(
                f"{' and '.join(capped)} must hold across hosts, which needs Redis: set PODFLOW_LIMITS_URL "
                "to a redis:// URL (the broker is RabbitMQ, which cannot hold the slots)"
            )
        return self

    # -- derived values ---------------------------------------------------------
    @property
    def store_kind(self) -> Literal["mongo", "postgres", "sqlite"]:
        if self.store_url:
            kind = _STORE_SCHEMES[self.store_url.partition("://")[0].lower()]
            return "mongo" if kind == "mongo" else "postgres" if kind == "postgres" else "sqlite"
        return "mongo" if self.mongodb_uri else "sqlite"

    @property
    def mongo_database(self) -> str:
        """The MongoDB database: the one the store URL names (``mongodb://host/<db>``), else MONGODB_DATABASE."""
        return _url_database(self.store_url or self.mongodb_uri) or self.mongodb_database

    @property
    def store_location(self) -> str:
        """The store's URL (or the SQLite file), password included: redact before showing it."""
        if self.store_kind == "sqlite":
            return str(self.sqlite_path)
        return self.store_url or self.mongodb_uri

    @property
    def sqlite_path(self) -> Path:
        """``sqlite:///var/x.db`` is relative, ``sqlite:////srv/x.db`` absolute (SQLAlchemy's spelling)."""
        if self.store_url.lower().startswith("sqlite://"):
            return Path(self.store_url[len("sqlite:///") :])
        return self.data_dir / "podflow.sqlite3"

    @property
    def broker_heartbeat_timeout_s(self) -> float:
        """How long a worker may be silent on a Redis broker before Dramatiq counts it
        dead and hands its unacknowledged messages on: Dramatiq's 60 s, or half
        PODFLOW_HEARTBEAT_TIMEOUT if that is shorter, so a dead worker's messages are
        free again by the time the sweep finds its runs stale."""
        return min(60.0, self.heartbeat_timeout_s / 2)

    @property
    def podcasts_dir(self) -> Path:
        return self.data_dir / "podcasts"

    @property
    def auth_token(self) -> str:
        return self.api_token.get_secret_value()

    @property
    def webhook_hosts(self) -> tuple[str, ...]:
        """PODFLOW_WEBHOOK_ALLOWED_HOSTS as a list (empty: any host)."""
        return tuple(h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip())

    @property
    def webhook_targets(self) -> WebhookTargets:
        """Where runs' webhooks go by default, and may go at all."""
        return WebhookTargets(default_url=self.webhook_url or None, allowed_hosts=self.webhook_hosts)

    @property
    def caps_url(self) -> str:
        """The Redis holding the provider caps: PODFLOW_LIMITS_URL, else a Redis broker's URL."""
        if self.limits_url:
            return self.limits_url
        return "" if self.broker_url.startswith(("amqp://", "amqps://")) else self.broker_url


def _url_database(url: str) -> str:
    """The database a ``mongodb://`` URL's path names ("" for none)."""
    if not url.lower().startswith(("mongodb://", "mongodb+srv://")):
        return ""
    return urlsplit(url).path.lstrip("/").split("/")[0]


# -- the old module's settings ---------------------------------------------------------


def _as_mode(value: str) -> str:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return "queue"
    if value.strip().lower() in ("0", "false", "no", "off"):
        return "thread"
    return value  # refused by the mode field, the error naming USE_CELERY


@dataclass(frozen=True, slots=True)
class OldSetting:
    """A setting of the old Celery module, honoured when its podflow name is unset."""

    name: str
    #: the podflow setting it stands for
    field: str
    #: its value as the podflow setting's (None: not usable, ignored with a warning)
    convert: Callable[[str], Any] = str
    #: what the warning adds
    note: str = ""


def _redis_only(value: str) -> str | None:
    return value if value.startswith(("redis://", "rediss://", "unix://")) else None


#: every old name podflow honours (README, "Migrating from the Celery module")
OLD_SETTINGS = (
    OldSetting("CELERY_BROKER_URL", "broker_url"),
    OldSetting(
        "CELERY_RESULT_BACKEND",
        "result_backend",
        _redis_only,
        "only a redis:// result backend is used; run state lives in the store either way",
    ),
    OldSetting("CELERY_TASK_SOFT_TIME_LIMIT", "soft_time_limit_s"),
    OldSetting("CELERY_TASK_TIME_LIMIT", "time_limit_s"),
    OldSetting("CELERY_CONCURRENCY", "concurrency"),
    OldSetting("USE_CELERY", "mode", _as_mode, "true is PODFLOW_MODE=queue, false is PODFLOW_MODE=thread"),
)


def _file_values(env_file: str | Path | None) -> dict[str, str]:
    if env_file is None or not Path(env_file).is_file():
        return {}
    return {k: v for k, v in dotenv_values(env_file, encoding="utf-8").items() if v is not None}


def _old_values(
    environ: Mapping[str, str], env_file: str | Path | None, overrides: Mapping[str, Any]
) -> list[tuple[OldSetting, str, bool]]:
    """``(old setting, its value, whether its podflow name is set too)`` for each old name that is set
    (the environment wins over ``env_file``, as for every setting)."""
    values = {**_file_values(env_file), **environ}
    return [
        (old, values[old.name], env_var(old.field) in values or old.field in overrides)
        for old in OLD_SETTINGS
        if old.name in values
    ]


def old_setting_notes(
    settings: Settings, *, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> list[str]:
    """One warning per old name that is set: what replaces it, and which value won."""
    environ = os.environ if environ is None else environ
    notes = []
    for old, value, podflow_set in _old_values(environ, env_file, {}):
        new = env_var(old.field)
        extra = f" ({old.note})" if old.note else ""
        if podflow_set:
            notes.append(f"{old.name} and {new} are both set: {new} wins; remove {old.name}{extra}")
        elif old.convert(value) is None:
            notes.append(f"{old.name} is the old module's name and its value is ignored{extra}")
        else:
            notes.append(f"{old.name} is the old module's name for {new}: it is used, but rename it{extra}")
    values = {**_file_values(env_file), **environ}
    if "MONGODB_DATABASE" in values and settings.store_kind == "mongo":
        named = _url_database(settings.store_url or settings.mongodb_uri)
        if named:
            notes.append(
                f"MONGODB_DATABASE and the database in the store URL are both set: the URL's ({named!r}) wins;"
                " remove MONGODB_DATABASE"
            )
        else:
            notes.append(
                "MONGODB_DATABASE is the old module's name: it is used, but name the database in the store URL"
                f" instead (PODFLOW_STORE_URL=mongodb://host/{settings.mongodb_database})"
            )
    return notes


def env_var(field_name: str) -> str:
    """The environment variable behind the setting ``field_name``."""
    extra = Settings.model_fields[field_name].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["env"])


def _env_names() -> dict[str, str]:
    return {env_var(name): name for name in Settings.model_fields}


def _describe(error: Mapping[str, Any], env_names: Mapping[str, str], old: Mapping[str, str] | None = None) -> str:
    loc = error.get("loc") or ()
    var = str(loc[0]) if loc else ""
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if not var:  # a model-level check; its message names the variables itself
        return message
    if old and var in old:  # given under the old module's name
        var = f"{old[var]} (the old name of {env_var(var)})"
    elif var in env_names.values():  # constructed by field name, e.g. in tests
        var = next(env for env, name in env_names.items() if name == var)
    if "input" in error and not isinstance(error["input"], dict):
        shown = "<hidden>" if var in _SECRETS else repr(error["input"])
        return f"{var}={shown}: {message[:1].lower()}{message[1:]}"
    return f"{var}: {message[:1].lower()}{message[1:]}"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """PODFLOW_* variables in ``environ`` that no setting reads, with a suggestion each."""
    known = set(_env_names())
    notes = []
    for var in sorted(environ):
        if var.startswith("PODFLOW_") and var not in known and not var.startswith("PODFLOW_TEST_"):
            close = difflib.get_close_matches(var, known, n=1)
            notes.append(f"{var} (did you mean {close[0]}?)" if close else var)
    return notes


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and validate the settings from the environment and ``env_file``.

    The old module's names (:data:`OLD_SETTINGS`) are honoured where the podflow
    name is unset; :func:`old_setting_notes` says so, once each.

    Raises:
      ConfigError: with one line naming each invalid variable and what is wrong.
    """
    old: dict[str, str] = {}
    for setting, value, podflow_set in _old_values(os.environ, env_file, overrides):
        converted = setting.convert(value)
        if not podflow_set and converted is not None:
            overrides[setting.field] = converted
            old[setting.field] = setting.name
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        env_names = _env_names()
        lines = [_describe(err, env_names, old) for err in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
