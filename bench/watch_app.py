"""``uvicorn bench.watch_app:app``: the API app on a store that counts its reads.

For :mod:`bench.watchers`: every read of a run (``get_run``, ``get_runs``) is
counted, and the count written to BENCH_READS_FILE every 0.2 s, so the
benchmark can tell how many reads its watchers cost the API process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from api.app import create_app
from podflow.boot import boot
from podflow.store import open_store

__all__ = ["app"]

_COUNTED = frozenset({"get_run", "get_runs"})


class _CountingStore:
    """The store, with its run reads counted."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in _COUNTED:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return attr(*args, **kwargs)

        return counted


def _report(store: _CountingStore, path: Path) -> None:
    while True:
        path.write_text(str(store.reads))
        time.sleep(0.2)


_settings = boot()
_store = _CountingStore(open_store(_settings))
threading.Thread(target=_report, args=(_store, Path(os.environ["BENCH_READS_FILE"])), daemon=True).start()
app = create_app(_settings, store=_store)  # type: ignore[arg-type]
