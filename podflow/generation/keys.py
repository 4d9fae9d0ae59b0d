"""Input-derived keys for stage results (a checkpoint layer stores results under them).

A stage's result is a pure function of its inputs, so a digest of those inputs
names it: the same inputs give the same key, any change gives another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["input_key"]

#: bump when a stage's output changes for the same inputs (a new prompt, a new framing)
KEY_VERSION = 1


def input_key(stage: str, inputs: Any) -> str:
    """``<stage>-<sha256 of the canonical JSON of inputs>``."""
    canonical = json.dumps(
        {"stage": stage, "version": KEY_VERSION, "inputs": inputs},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return f"{stage}-{hashlib.sha256(canonical.encode()).hexdigest()}"
