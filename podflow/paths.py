"""Where a run's files live, and what they are called: one list for the runner, the lifecycle and the API.

::

    PODFLOW_DATA_DIR/
      podcasts/
        <run_id>/                 run_dir: the result files of a SUCCESS run
          .attempt-<n>/           staging_dir: attempt n writes here; removed
                                  whatever happens, after a success once its
                                  files were moved up into run_dir

A result's stored paths (:class:`~podflow.models.RunResult`) are relative to
PODFLOW_DATA_DIR (:func:`stored_path`), so a shared data directory may be
mounted at different places on different hosts. Nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath

__all__ = [
    "PODCASTS",
    "RESULT_FILES",
    "STAGING_PREFIX",
    "podcasts_dir",
    "run_dir",
    "staging_attempts",
    "staging_dir",
    "stored_path",
]

#: the directory under PODFLOW_DATA_DIR that holds every run's files
PODCASTS = "podcasts"
#: an attempt's staging directory is this prefix and the attempt number
STAGING_PREFIX = ".attempt-"

#: a run's result files: name (``GET /api/podcast/runs/{run_id}/audio``, ...) ->
#: the field of :class:`~podflow.generation.base.GenerationResult` and
#: :class:`~podflow.models.RunResult` that holds its path
RESULT_FILES: dict[str, str] = {"audio": "audio_path", "transcript": "transcript_path", "outline": "outline_path"}


def podcasts_dir(data_dir: Path) -> Path:
    """``PODFLOW_DATA_DIR/podcasts/``."""
    return Path(data_dir) / PODCASTS


def run_dir(data_dir: Path, run_id: str) -> Path:
    """Where a run's files live: ``PODFLOW_DATA_DIR/podcasts/<run_id>/``."""
    return podcasts_dir(data_dir) / run_id


def staging_dir(data_dir: Path, run_id: str, attempt: int) -> Path:
    """Attempt ``attempt``'s staging directory: ``podcasts/<run_id>/.attempt-<n>/``."""
    return run_dir(data_dir, run_id) / f"{STAGING_PREFIX}{attempt}"


def staging_attempts(data_dir: Path, run_id: str) -> Iterator[tuple[int, Path]]:
    """``(attempt, directory)`` of every staging directory the run has on disk."""
    for path in run_dir(data_dir, run_id).glob(f"{STAGING_PREFIX}*"):
        suffix = path.name.removeprefix(STAGING_PREFIX)
        if suffix.isdigit():
            yield int(suffix), path


def stored_path(run_id: str, relative: PurePath) -> str:
    """How a result file at ``relative`` inside the run's directory is stored:
    relative to PODFLOW_DATA_DIR, with ``/`` separators."""
    return (PurePath(PODCASTS) / run_id / relative).as_posix()
