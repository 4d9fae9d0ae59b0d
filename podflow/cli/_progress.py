"""A followed run's progress on the terminal, without a progress-bar dependency.

On a terminal, one line redrawn in place with ``\\r``::

    STARTED  [##########----------]  50%  audio: spoke turn 2 of 4  6.1 s

Elsewhere (a pipe, a log file, CI), one line per change of status, attempt or
stage, so a log stays short however many progress events the run sends::

        0.0 s  PENDING  waiting for a worker
        0.9 s  STARTED  attempt 1
        0.9 s           outline      0%  outlining 1 source(s)
        1.0 s           transcript  10%  writing 2 segment(s)
        1.2 s           audio       20%  speaking 9 turns
        4.3 s  SUCCESS  79 words, 33.4 s of audio
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ._common import duration

__all__ = ["ProgressDisplay"]

BAR_WIDTH = 20


class ProgressDisplay:
    """Shows the states of a run (dicts with ``status``, ``attempt``, ``progress``) on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        columns: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.columns = columns or shutil.get_terminal_size().columns
        self._clock = clock
        self._started = clock()
        self._last_key: tuple[Any, ...] | None = None
        self._drawn = 0  # characters of the bar now on screen

    def elapsed(self) -> str:
        return duration(self._clock() - self._started)

    def update(self, state: Mapping[str, Any]) -> None:
        status = str(state.get("status", "?"))
        progress = state.get("progress") or {}
        if self.tty:
            self._draw(self._bar_line(status, state, progress))
            return
        key = (status, state.get("attempt"), progress.get("stage"))
        last, self._last_key = self._last_key, key
        if key == last:
            return
        if last is None or last[:2] != key[:2]:  # a new status, or a new attempt
            self._line(f"{status:<8} {_headline(status, state)}".rstrip())
        if status == "STARTED" and progress:
            stage, message = progress.get("stage", ""), progress.get("message", "")
            percent = float(progress.get("percent") or 0.0)
            self._line(f"{'':<8} {stage:<10} {percent:3.0f}%  {message}".rstrip())

    def close(self) -> None:
        """End the bar's line (on a terminal), leaving its last state visible."""
        if self.tty and self._drawn:
            print(file=self.stream, flush=True)
            self._drawn = 0

    # -- drawing ---------------------------------------------------------------
    def _bar_line(self, status: str, state: Mapping[str, Any], progress: Mapping[str, Any]) -> str:
        percent = 100.0 if status == "SUCCESS" else float(progress.get("percent") or 0.0)
        filled = round(BAR_WIDTH * min(max(percent, 0.0), 100.0) / 100)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        if status == "STARTED" and progress:
            what = f"{progress.get('stage', '')}: {progress.get('message', '')}"
        else:
            what = _headline(status, state)
        return f"{status:<8} [{bar}] {percent:3.0f}%  {what}  {self.elapsed()}"

    def _line(self, text: str) -> None:
        print(f"{self.elapsed():>9}  {text}", file=self.stream, flush=True)

    def _draw(self, text: str) -> None:
        text = text[: max(self.columns - 1, 10)]
        pad = " " * max(self._drawn - len(text), 0)  # cover what a longer previous line left
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._drawn = len(text)


def _headline(status: str, state: Mapping[str, Any]) -> str:
    """What a status line says besides the status."""
    if status == "PENDING":
        return "waiting for a worker"
    if status == "STARTED":
        return f"attempt {state.get('attempt')}"
    error = state.get("error")
    if error:
        return f"{error.get('type')}: {error.get('message')}"
    return str((state.get("progress") or {}).get("message") or "")
