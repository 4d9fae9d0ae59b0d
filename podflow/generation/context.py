"""An in-process :class:`GenerationContext`, for tests and local use.

The workers build their own context (progress into the store, cancellation
from heartbeats, checkpoints under PODFLOW_DATA_DIR); this one keeps progress in
memory, is cancelled by a :class:`threading.Event`, and keeps checkpoints in
``checkpoint_dir`` when given one (else it computes every stage).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..checkpoints import Checkpoints
from ..errors import RunCancelled
from ..models import Progress
from .base import GeneratorConfig

__all__ = ["LocalContext"]

ProgressCallback = Callable[[str, float, str], None]


class LocalContext:
    """Runs a generator in this process: ``ctx.events`` records every progress report.

    ``progress()`` checks for cancellation first, as podflow's own context does,
    then records the report and calls ``on_progress(stage, percent, message)``.
    """

    def __init__(
        self,
        *,
        run_id: str,
        work_dir: Path,
        config: GeneratorConfig | None = None,
        cancel_event: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
        attempt: int = 1,
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.work_dir = Path(work_dir)
        self.config = config or GeneratorConfig()
        self.cancel_event = cancel_event or threading.Event()
        self.events: list[Progress] = []
        self._on_progress = on_progress
        self.checkpoints = Checkpoints(root=checkpoint_dir, fence=self.check_cancelled)

    def progress(self, stage: str, percent: float, message: str = "") -> None:
        self.check_cancelled()
        self.events.append(Progress(stage=stage, percent=min(100.0, max(0.0, percent)), message=message))
        if self._on_progress is not None:
            self._on_progress(stage, percent, message)

    def check_cancelled(self) -> None:
        """Raises RunCancelled once ``cancel_event`` is set."""
        if self.cancel_event.is_set():
            raise RunCancelled(f"run {self.run_id} was cancelled")
