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


def test_a_postgresql_store_url_opens_postgresql(postgres_url: str) -> None:
    from podflow.store.postgres import PostgresStore

    store = open_store(load_settings(None, store_url=postgres_url, max_attempts=4))
    assert isinstance(store, PostgresStore) and isinstance(store, Store) and store.max_attempts == 4
    store.close()


def test_a_sqlite_store_url_names_the_file(tmp_path: Path) -> None:
    settings = load_settings(None, store_url=f"sqlite:///{tmp_path}/elsewhere.db")
    assert settings.store_kind == "sqlite" and settings.sqlite_path == tmp_path / "elsewhere.db"
    store = open_store(settings)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "elsewhere.db"
    store.close()


def test_a_mongodb_store_url_is_the_mongodb_store() -> None:
    settings = load_settings(None, store_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    assert settings.store_kind == "mongo"
    with pytest.raises(StoreUnavailable, match="MongoDB unavailable"):
        open_store(settings)


def test_an_unknown_store_scheme_is_a_configuration_error_naming_the_setting() -> None:
    from podflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"PODFLOW_STORE_URL='mysql://db/x': unknown store scheme 'mysql'"):
        load_settings(None, store_url="mysql://db/x")
    with pytest.raises(ConfigError, match="set only one"):
        load_settings(None, store_url="postgresql://db/x", mongodb_uri="mongodb://db")
