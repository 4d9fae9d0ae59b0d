"""Writing result files so that a reader never sees half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["partial_path", "write_json"]


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is complete: a hidden sibling."""
    return path.with_name(f".{path.name}.partial")


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as UTF-8 JSON to a temporary sibling, then rename it to ``path``."""
    tmp = partial_path(path)
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
