"""Checkpoints: stage results kept on the data directory, so a crash or a retry never pays twice for finished work.

A generator names each stage result by a key derived from everything the
result depends on (:func:`podflow.generation.keys.input_key`; the built-in
stages' jobs have a ``key()``) and asks :class:`Checkpoints` (``ctx.checkpoints``)
for it: the stored result comes back, or it is computed, stored and returned::

    outline = ctx.checkpoints.value(job.key(), lambda: write_outline(job), stage="outline",
                                    encode=Outline.to_json, decode=Outline.from_json)
    clip = ctx.checkpoints.file(clip.key(), work / "turn.wav", lambda path: speak(clip, path),
                                stage="audio", valid=is_complete_clip)

and, for many files made in parallel, :meth:`Checkpoints.reuse_file` first, then
:meth:`Checkpoints.keep_file` as each one is made.

Where: ``PODFLOW_DATA_DIR/checkpoints/<run_id>/<key><suffix>``
(:func:`podflow.paths.checkpoint_dir`), on the data directory every worker host
shares. Every attempt of a run reads and writes that directory, so attempt
n+1 reuses whatever attempts 1..n finished, however they ended (SIGKILL,
shutdown, soft time limit, a transient error, a lost lease). A retry of a
FAILURE or REVOKED run (a new run, ``retry_of``) reads its own directory, then
the directories of the runs it retries (read only), and links what it reuses
into its own, so it no longer depends on theirs.

Why it is safe:

- **Visible only when complete.** A result is written under a hidden name of
  its own (``.<key>.<token>.partial``), fsynced, then linked to its key
  (``os.link``: atomic, and it never replaces an existing name), and the
  directory is fsynced. A crash leaves no checkpoint or a complete one. A
  checkpoint that fails its check anyway (a disk that lied about fsync, a file
  cut short or planted by hand: a JSON value must parse and name its key, a
  clip must be a complete PCM WAV of plausible length) is never reused: it is
  recomputed, and the new result replaces it.
- **Fenced by content addressing.** A key is a digest of the inputs, so any
  complete result stored under it is a correct result for it, whoever stored
  it. A zombie attempt (it lost its lease but runs on, e.g. a stopped process
  that is continued) can only *add* a result nobody stored yet: the first
  writer wins, and a stored result is never written again, only replaced when
  it fails its check. What an attempt reuses it reads at once (a value) or
  first hard-links into its own staging directory and checks there (a file),
  so nothing done to the checkpoint afterwards (a replacement, a removal)
  changes what it reads. Checkpoints are removed only by the attempt that
  finished the run SUCCESS, after the store accepted that finish (a zombie's
  finish is refused), by the sweep for runs that are gone, SUCCESS, or
  FAILURE/REVOKED for longer than PODFLOW_CHECKPOINT_TTL, and by deleting the
  run (refused while it runs).
- **LLM results are not deterministic**: two attempts may compute different,
  equally valid outlines for one key. The first stored is the one later
  attempts reuse; an attempt that computed its own goes on with it (the
  transcript's key includes the outline, so the two never mix).

Counting: every result is ``computed`` or ``reused``, per stage
(:meth:`Checkpoints.tally`, recorded in the run's result), and each count is
also handed to ``on_count`` (the process's counters for ``/metrics``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from .models import Run
from .paths import checkpoint_dir, checkpoint_runs, checkpoints_dir
from .states import RunStatus

__all__ = [
    "CheckpointUsage",
    "Checkpoints",
    "StageTally",
    "disk_usage",
    "is_removable",
    "remove_checkpoints",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: a key or stage name is a file-name-safe word: what input_key makes, ``<stage>-<hex>``
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_STAGE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PARTIAL = ".partial"


@dataclass(slots=True)
class StageTally:
    """One stage's results: computed by this attempt, or reused from a checkpoint."""

    computed: int = 0
    reused: int = 0
    #: of ``reused``, those taken from a run this one retries
    inherited: int = 0


def _same(value: Any) -> Any:
    return value


def _exists(path: Path) -> bool:
    return path.is_file()


def _never_fenced() -> None:
    return None


class Checkpoints:
    """A run's checkpoints, as one attempt sees them. Thread-safe.

    Parameters:
      root: the run's checkpoint directory (:func:`podflow.paths.checkpoint_dir`);
        None turns checkpoints off (everything is computed, and counted).
      origins: ``(run_id, directory)`` of the runs this run retries, nearest first; read only.
      fence: called before every write (the attempt's ``check_cancelled``): an
        attempt known to have lost its run stops before it writes.
      on_count: ``on_count(stage, "computed" | "reused")`` for every result.
    """

    def __init__(
        self,
        *,
        root: Path | None,
        origins: Sequence[tuple[str, Path]] = (),
        fence: Callable[[], None] = _never_fenced,
        on_count: Callable[[str, str], None] | None = None,
    ) -> None:
        self.root = None if root is None else Path(root)
        self.origins = list(origins)
        self._fence = fence
        self._on_count = on_count
        self._lock = threading.Lock()
        self._tally: dict[str, StageTally] = {}

    @property
    def enabled(self) -> bool:
        return self.root is not None

    # -- JSON values ------------------------------------------------------------------
    def value(
        self,
        key: str,
        compute: Callable[[], T],
        *,
        stage: str,
        encode: Callable[[T], Any] = _same,
        decode: Callable[[Any], T] = _same,
    ) -> T:
        """The result stored under ``key``, or ``compute()``'s, stored (as ``encode(result)``, JSON).

        ``decode`` turns the stored JSON back into the result; a checkpoint it
        refuses (raising ValueError, KeyError or TypeError) is recomputed.

        Raises:
          ValueError: ``key`` or ``stage`` is not a file-name-safe word.
          whatever ``compute`` raises (nothing is stored then).
        """
        _check_names(key, stage)
        valid = _json_valid(key, decode)
        for origin, path in self._candidates(key, ".json"):
            found = _read_value(path, key, decode)
            if found is not None:
                self._adopt(path, key, ".json", origin, valid)
                self._count(stage, "reused", inherited=origin is not None)
                return found[0]
        result = compute()
        if self.root is not None:
            self._store_value(key, encode(result), valid)
        self._count(stage, "computed")
        return result

    # -- files ----------------------------------------------------------------------------
    def file(
        self,
        key: str,
        dest: Path,
        make: Callable[[Path], None],
        *,
        stage: str,
        valid: Callable[[Path], bool] = _exists,
    ) -> Path:
        """``dest``, holding the file stored under ``key``, or the one ``make(dest)`` writes (then stored).

        ``valid(path)`` checks a stored file before it is reused. ``make`` must
        write ``dest`` completely and never write it again (it becomes the checkpoint).

        Raises:
          ValueError: ``key`` or ``stage`` is not a file-name-safe word.
          whatever ``make`` raises.
        """
        if self.reuse_file(key, dest, stage=stage, valid=valid):
            return dest
        make(dest)
        self.keep_file(key, dest, stage=stage, valid=valid)
        return dest

    def reuse_file(self, key: str, dest: Path, *, stage: str, valid: Callable[[Path], bool] = _exists) -> bool:
        """Put the file stored under ``key`` (with ``dest``'s suffix) at ``dest``, if there is
        a valid one; True if so (counted as reused). ``dest`` is a link of the attempt's own."""
        _check_names(key, stage)
        for origin, path in self._candidates(key, dest.suffix):
            try:
                _link_or_copy(path, dest)
            except FileNotFoundError:  # removed meanwhile (the sweep): look further
                continue
            if valid(dest):
                self._adopt(path, key, dest.suffix, origin, valid)
                self._count(stage, "reused", inherited=origin is not None)
                return True
            log.info("checkpoint %s%s failed its check; recomputing it", key, dest.suffix)
            dest.unlink(missing_ok=True)
        return False

    def keep_file(self, key: str, made: Path, *, stage: str, valid: Callable[[Path], bool] = _exists) -> None:
        """Store ``made`` (complete, never written again) under ``key``; counted as computed.

        A valid file already stored under ``key`` is kept (the first writer wins);
        one that fails ``valid`` is replaced.
        """
        _check_names(key, stage)
        if self.root is not None:
            self._fence()
            _fsync(made)
            self._publish(made, self.root / f"{key}{made.suffix}", valid)
        self._count(stage, "computed")

    # -- what was done ----------------------------------------------------------------------
    def tally(self) -> dict[str, StageTally]:
        """Per stage, in the order stages were first counted: what was computed and reused."""
        with self._lock:
            return {stage: StageTally(t.computed, t.reused, t.inherited) for stage, t in self._tally.items()}

    @property
    def computed(self) -> int:
        """Results this attempt computed (and stored, when checkpoints are on)."""
        with self._lock:
            return sum(t.computed for t in self._tally.values())

    # -- internals -----------------------------------------------------------------------
    def _candidates(self, key: str, suffix: str) -> list[tuple[str | None, Path]]:
        """Where a checkpoint of ``key`` may be: the run's own directory, then its origins'."""
        if self.root is None:
            return []
        name = f"{key}{suffix}"
        found = [(None, self.root / name)] if (self.root / name).is_file() else []
        return found + [
            (run_id, directory / name) for run_id, directory in self.origins if (directory / name).is_file()
        ]

    def _count(self, stage: str, outcome: str, *, inherited: bool = False) -> None:
        with self._lock:
            tally = self._tally.setdefault(stage, StageTally())
            if outcome == "computed":
                tally.computed += 1
            else:
                tally.reused += 1
                tally.inherited += inherited
        if self._on_count is not None:
            self._on_count(stage, outcome)

    def _adopt(self, path: Path, key: str, suffix: str, origin: str | None, valid: Callable[[Path], bool]) -> None:
        """Link an origin's checkpoint into the run's own directory, so a retry of
        this run finds it even once the origin is gone (best effort)."""
        if origin is None or self.root is None:
            return
        try:
            self._fence()
            self._publish(path, self.root / f"{key}{suffix}", valid)
        except OSError as exc:
            log.warning("checkpoint %s of run %s not linked into this run's: %s", key, origin, exc)

    def _store_value(self, key: str, encoded: Any, valid: Callable[[Path], bool]) -> None:
        assert self.root is not None
        self._fence()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.json.{secrets.token_hex(6)}{_PARTIAL}"
        try:
            data = json.dumps({"key": key, "value": encoded}, ensure_ascii=False, separators=(",", ":"))
            with open(tmp, "wb") as out:
                out.write(data.encode())
                out.flush()
                os.fsync(out.fileno())
            self._publish(tmp, self.root / f"{key}.json", valid)
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, source: Path, final: Path, valid: Callable[[Path], bool]) -> None:
        """Give the complete, fsynced ``source`` the name ``final`` unless a valid file has it."""
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, final)
        except FileExistsError:
            if valid(final):
                return  # the first writer wins: equal, by its key
            tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}{_PARTIAL}")
            try:
                _link_or_copy(source, tmp)
                os.replace(tmp, final)  # only ever over a file that failed its check
            finally:
                tmp.unlink(missing_ok=True)
        except OSError:  # no hard links here (another filesystem, or none at all): a copy, renamed
            tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}{_PARTIAL}")
            try:
                _copy(source, tmp)
                if not final.exists() or not valid(final):
                    os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        _fsync_dir(final.parent)


def _check_names(key: str, stage: str) -> None:
    if not _KEY.match(key):
        raise ValueError(f"checkpoint key {key!r} must be a file-name-safe word (see podflow.generation.keys)")
    if not _STAGE.match(stage):
        raise ValueError(f"checkpoint stage {stage!r} must be a lowercase word")


def _json_valid(key: str, decode: Callable[[Any], Any]) -> Callable[[Path], bool]:
    return lambda path: _read_value(path, key, decode) is not None


def _read_value(path: Path, key: str, decode: Callable[[Any], T]) -> tuple[T] | None:
    """``(decoded value,)`` of the JSON checkpoint at ``path``, or None if it is unusable."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("key") != key or "value" not in data:
            raise ValueError("not a checkpoint of this key")
        return (decode(data["value"]),)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("checkpoint %s (%s) failed its check; recomputing it: %s", key, path.name, exc)
        return None


def _link_or_copy(source: Path, dest: Path) -> None:
    """``dest`` becomes another name of ``source`` (a copy where hard links are not possible)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except FileNotFoundError:
        raise
    except OSError:
        _copy(source, dest)


def _copy(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    _fsync(dest)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a new name in ``path`` durable (where directories can be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the directory as a whole: clean-up and disk use -------------------------------------------


def remove_checkpoints(data_dir: Path, run_id: str) -> bool:
    """Remove a run's checkpoint directory; True if there was one."""
    path = checkpoint_dir(data_dir, run_id)
    if not path.exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def is_removable(run: Run | None, *, now: datetime, ttl_s: float) -> bool:
    """Whether a run's checkpoints may go: the run is gone, SUCCESS (its result holds
    what it made), or FAILURE/REVOKED for longer than ``ttl_s`` (a retry may still
    reuse them until then). Never while it is PENDING or STARTED."""
    if run is None or run.status is RunStatus.SUCCESS:
        return True
    if run.status in (RunStatus.FAILURE, RunStatus.REVOKED):
        ended = run.finished_at or run.updated_at
        return (now - ended).total_seconds() >= ttl_s
    return False


@dataclass(frozen=True, slots=True)
class CheckpointUsage:
    """What the checkpoints take on disk (``podflow status``)."""

    path: str
    runs: int
    files: int
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "runs": self.runs, "files": self.files, "bytes": self.bytes}


def disk_usage(data_dir: Path) -> CheckpointUsage:
    """Runs with checkpoints, their files and bytes (a link shared with a staging
    directory counts here). Files being written count too."""
    runs = files = size = 0
    for _, directory in checkpoint_runs(data_dir):
        runs += 1
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(directory):
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False):
                        files += 1
                        size += entry.stat(follow_symlinks=False).st_size
    return CheckpointUsage(str(checkpoints_dir(data_dir)), runs, files, size)
