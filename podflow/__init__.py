"""podflow: crash-safe podcast generation runs on Dramatiq, Redis and MongoDB."""

from __future__ import annotations

from .errors import (
    ConfigError,
    GenerationError,
    PodflowError,
    RunCancelled,
    RunInterrupted,
    SoftTimeLimitExceeded,
    TransientGenerationError,
    WorkerShutdown,
)
from .models import EpisodeProfile, Progress, Run, RunRequest, RunResult, Source, Speaker, SpeakerProfile
from .settings import Settings, load_settings
from .states import RunStatus, is_terminal

__version__ = "0.1.0.dev0"

__all__ = [
    # settings
    "Settings",
    "load_settings",
    # runs
    "Progress",
    "Run",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "is_terminal",
    # sources and profiles
    "EpisodeProfile",
    "Source",
    "Speaker",
    "SpeakerProfile",
    # errors
    "ConfigError",
    "GenerationError",
    "PodflowError",
    "RunCancelled",
    "RunInterrupted",
    "SoftTimeLimitExceeded",
    "TransientGenerationError",
    "WorkerShutdown",
]
