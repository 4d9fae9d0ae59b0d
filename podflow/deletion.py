"""Deleting runs with their files: the one place that does it.

A run's files are its results (``podcasts/<run_id>/``, :func:`podflow.paths.run_dir`)
and its checkpoints (``checkpoints/<run_id>/``, :func:`podflow.paths.checkpoint_dir`).
``podflow runs delete`` (one run, or a filter's), ``DELETE``-ing a run through
:func:`podflow.lifecycle.delete`, and the sweep's retention rule all come here.

The order, for an ended run (SUCCESS, FAILURE, REVOKED): **files first, then
the row.** A terminal run never changes again, so nothing can start writing
files for it between the two steps. A process that dies between them leaves a
row whose files are gone -- an ended run whose audio reads as "missing from the
data directory" (a clean 404, as for any lost file) -- and the next sweep, or
the same command again, finds the row and finishes the job. The other order
would leave the files with no row pointing at them, and nothing finds those
again without listing the whole data directory: orphans kept forever. (The
checkpoint rule of the sweep would catch a checkpoint directory, not a result
directory.)

A PENDING run is the exception: it may be claimed at any moment, so its row goes
first, by the store's conditional delete (never a STARTED run), and its files
after (a run never claimed has none; this only tidies up).

Checkpoints shared with a retry: a retry (``retry_of``) reads the checkpoints of
the run it retries read only and links what it reuses into its own directory
first (:mod:`podflow.checkpoints`), so removing the original's directory never
takes anything from a retry; at worst a retry still running recomputes a stage
it had not adopted yet.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from .checkpoints import remove_checkpoints
from .paths import run_dir
from .store.base import Store

__all__ = ["delete_ended", "remove_files"]


def remove_files(data_dir: Path, run_id: str) -> None:
    """Remove the run's result directory and its checkpoints (what is there)."""
    shutil.rmtree(run_dir(data_dir, run_id), ignore_errors=True)
    remove_checkpoints(data_dir, run_id)


def delete_ended(store: Store, run_ids: Sequence[str], *, data_dir: Path) -> list[str]:
    """Delete the ended runs ``run_ids`` (ids the caller read as SUCCESS, FAILURE or
    REVOKED) with their files: the files first, then the rows, in one store call.
    Returns the ids whose rows were deleted (one deleted meanwhile is not among them)."""
    for run_id in run_ids:
        remove_files(data_dir, run_id)
    return store.delete_ended(run_ids) if run_ids else []
