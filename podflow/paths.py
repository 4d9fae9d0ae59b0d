"""Where a run's files live, and what they are called: one list for the runner, the lifecycle and the API.

::

    PODFLOW_DATA_DIR/
      podcasts/
        <run_id>/                 run_dir: the result files of a SUCCESS run
          .attempt-<n>/           staging_dir: attempt n writes here; removed
                                  whatever happens, after a success once its
                                  files were moved up into run_dir
      checkpoints/
        <run_id>/                 checkpoint_dir: the run's stage results, kept
                                  across its attempts (and for a retry of it)
          <key>.json | <key>.wav  one stage result, named by its input-derived key
          .<key>.<token>.partial  being written (fsynced, then linked into place)

Checkpoints live beside ``podcasts/``, not inside a run's directory, so the
sweep lists the runs that have any in one directory read
(:func:`checkpoint_runs`), and the API serves nothing of them.

A result's stored paths (:class:`~podflow.models.RunResult`) are relative to
PODFLOW_DATA_DIR (:func:`stored_path`), so a shared data directory may be
mounted at different places on different hosts. Nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath

__all__ = [
    "CHECKPOINTS",
    "PODCASTS",
    "RESULT_FILES",
    "STAGING_PREFIX",
    "checkpoint_dir",
    "checkpoint_runs",
    "checkpoints_dir",
    "podcasts_dir",
    "run_dir",
    "staging_attempts",
    "staging_dir",
    "stored_path",
]

#: the directory under PODFLOW_DATA_DIR that holds every run's files
PODCASTS = "podcasts"
#: the directory under PODFLOW_DATA_DIR that holds every run's checkpoints
CHECKPOINTS = "checkpoints"
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


def checkpoints_dir(data_dir: Path) -> Path:
    """``PODFLOW_DATA_DIR/checkpoints/``."""
    return Path(data_dir) / CHECKPOINTS


def checkpoint_dir(data_dir: Path, run_id: str) -> Path:
    """Where a run's checkpoints live: ``PODFLOW_DATA_DIR/checkpoints/<run_id>/``."""
    return checkpoints_dir(data_dir) / run_id


def checkpoint_runs(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(run_id, directory)`` of every run that has a checkpoint directory on disk."""
    root = checkpoints_dir(data_dir)
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return
    for path in entries:
        if path.name.startswith("run_") and path.is_dir():
            yield path.name, path


def stored_path(run_id: str, relative: PurePath) -> str:
    """How a result file at ``relative`` inside the run's directory is stored:
    relative to PODFLOW_DATA_DIR, with ``/`` separators."""
    return (PurePath(PODCASTS) / run_id / relative).as_posix()
