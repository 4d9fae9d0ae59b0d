"""Running ``podflow`` commands in-process with a clean configuration."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.execution import ROOT


@pytest.fixture
def podflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """``podflow_env(**settings)``: only these podflow settings (plus PODFLOW_DATA_DIR
    = tmp_path), no ``.env`` (the working directory is tmp_path). Returns tmp_path."""

    def configure(**settings: str) -> Path:
        for name in list(os.environ):
            if name.startswith(("PODFLOW_", "MONGODB_")):
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(ROOT))
        for name, value in {"PODFLOW_DATA_DIR": str(tmp_path), **settings}.items():
            monkeypatch.setenv(name, value)
        return tmp_path

    return configure
