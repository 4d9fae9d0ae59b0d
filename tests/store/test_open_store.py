from __future__ import annotations

from pathlib import Path

import pytest

from podflow.errors import StoreUnavailable
from podflow.settings import load_settings
from podflow.store import Store, open_store
from podflow.store.sqlite import SqliteStore


def test_without_mongodb_uri_the_store_is_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, mongodb_uri="", max_attempts=5)
    store = open_store(settings)
    assert isinstance(store, SqliteStore) and isinstance(store, Store)
    assert store.path == tmp_path / "podflow.sqlite3" and store.max_attempts == 5
    store.close()


def test_with_mongodb_uri_the_store_is_mongodb_and_an_unreachable_server_is_unavailable() -> None:
    settings = load_settings(None, mongodb_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    with pytest.raises(StoreUnavailable, match="MongoDB unavailable"):
        open_store(settings)
