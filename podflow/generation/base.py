"""The generator interface: how a podcast pipeline plugs into podflow.

A generator is any callable ``generate(request, ctx) -> GenerationResult``,
named by PODFLOW_GENERATOR as ``module:callable``. podflow calls it in a worker
thread (or a thread-mode pool thread) with everything it needs:

- ``request`` (:class:`GenerationRequest`): the episode and speaker profiles,
  the source documents, the episode name and the resolved briefing;
- ``ctx`` (:class:`GenerationContext`): ``ctx.progress(stage, percent,
  message)`` to report progress, ``ctx.check_cancelled()`` to stop early when
  the run was cancelled or lost, ``ctx.work_dir`` where files go, and
  ``ctx.config`` with generator options from the settings, including the
  configured providers (``ctx.config.llm_provider``, ``ctx.config.tts_provider``:
  endpoint, cluster-wide cap, retry policy; see :mod:`.providers`), and
  ``ctx.checkpoints`` (below).

Checkpoints (:class:`podflow.checkpoints.Checkpoints`): a stage result named by
a key derived from its inputs (:func:`.keys.input_key`) is kept on the data
directory, so that the next attempt of the run (after a crash, a shutdown, the
soft time limit, a transient error or a lost lease) and a user's retry of a
FAILURE or REVOKED run get it back instead of paying for it again::

    outline = ctx.checkpoints.value(
        input_key("outline", {"sources": ..., "model": ...}), lambda: ask_llm(...), stage="outline")
    clip = ctx.checkpoints.file(
        input_key("clip", {"voice": ..., "text": ...}), ctx.work_dir / "clip.wav",
        lambda path: speak(path), stage="audio", valid=lambda path: path.stat().st_size > 44)

``value`` stores JSON (``encode``/``decode`` turn a result into JSON and
back); ``file`` stores a file the generator wrote (``valid`` checks a stored one
before it is reused: a torn or truncated file is recomputed); for many files
made in parallel, ``reuse_file`` each first and ``keep_file`` each as it is
made. The key must cover everything the result depends on: change an input and
the key changes, so the stage is computed again. Each result counts as
computed or reused, per stage, in the run's result (``stages``) and in
``/metrics``. A generator that ignores checkpoints works as before; it only
pays again on every attempt.

Failure contract:

- raise :class:`podflow.errors.TransientGenerationError` for failures worth
  retrying (rate limits, timeouts of a remote model); podflow retries with
  backoff until PODFLOW_MAX_ATTEMPTS;
- any other exception fails the run at once, with its type and message;
- podflow may interrupt the generator's thread at any time with a
  :class:`podflow.errors.RunInterrupted` (cancellation, lost lease, soft time
  limit, shutdown) or, in a Dramatiq worker, dramatiq's ``TimeLimitExceeded``
  (soft time limit). Both derive from ``BaseException``: do not swallow them;
  clean up in ``finally``. Such an
  asynchronous exception cannot break into a blocking call, so wait on
  subprocesses, futures and sockets with short timeouts in a loop, or run
  the blocking work on the background loop with :func:`.loop.run`, which
  cancels it (closing its connections) when the generator is interrupted.

Files are written under ``ctx.work_dir``, the attempt's own staging directory
(``PODFLOW_DATA_DIR/podcasts/<run_id>/.attempt-<n>/``); the returned paths must
lie inside it (a relative path is taken relative to it). On success podflow moves
the returned files into ``PODFLOW_DATA_DIR/podcasts/<run_id>/``; everything else
in the staging directory is deleted, whatever the outcome. Checkpoints live
apart (``PODFLOW_DATA_DIR/checkpoints/<run_id>/``): removed once the run is
SUCCESS, kept for PODFLOW_CHECKPOINT_TTL after a FAILURE or REVOKED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..models import EpisodeProfile, Source, SpeakerProfile

if TYPE_CHECKING:
    from ..checkpoints import Checkpoints
    from .providers.calls import Provider

__all__ = [
    "GenerationContext",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "GeneratorConfig",
]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a generator needs to know about one run."""

    run_id: str
    episode_name: str
    episode_profile: EpisodeProfile
    speaker_profile: SpeakerProfile
    sources: list[Source]
    #: the episode profile's default briefing, then the run's briefing_suffix
    briefing: str = ""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """What a generator produced. Paths lie inside ``ctx.work_dir``."""

    transcript_path: Path | None = None
    outline_path: Path | None = None
    audio_path: Path | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Generator options, filled from the settings at the edge (:func:`.setup.generator_config`)."""

    #: PODFLOW_TTS: "espeak", "openai" or "none" (outline and transcript only)
    tts: str = "espeak"
    #: PODFLOW_TTS_TIMEOUT: timeout of one espeak-ng process (provider calls: the endpoint's)
    tts_timeout_s: float = 120.0
    #: PODFLOW_TTS_PARALLELISM: speech processes or requests of one run at once
    tts_parallelism: int = 2
    extra: dict[str, str] = field(default_factory=dict)
    #: PODFLOW_LLM: "none" (the built-in extractive writer) or "openai"
    llm: str = "none"
    #: PODFLOW_AUDIO_FORMAT: "mp3" or "wav"
    audio_format: str = "mp3"
    #: the providers behind PODFLOW_LLM=openai and PODFLOW_TTS=openai
    llm_provider: Provider | None = None
    tts_provider: Provider | None = None
    #: PODFLOW_LLM_REASKS, PODFLOW_LLM_SOURCE_CHARS
    llm_reasks: int = 2
    llm_source_chars: int = 60_000


@runtime_checkable
class GenerationContext(Protocol):
    """What podflow offers a running generator."""

    run_id: str
    attempt: int
    config: GeneratorConfig
    #: stage results kept across attempts and retries (see the module docstring)
    checkpoints: Checkpoints

    @property
    def work_dir(self) -> Path:
        """The attempt's directory for files (it exists once asked for)."""

    def progress(self, stage: str, percent: float, message: str = "") -> None:
        """Report progress of ``stage`` (0-100). Also checks for cancellation.

        Raises:
          RunInterrupted: the run was cancelled or this attempt lost it.
        """

    def check_cancelled(self) -> None:
        """Raises RunInterrupted if the run was cancelled or this attempt lost it."""


class Generator(Protocol):
    def __call__(self, request: GenerationRequest, ctx: GenerationContext) -> GenerationResult: ...
