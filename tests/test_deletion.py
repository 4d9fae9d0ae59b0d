"""Deleting runs with their files: files first for an ended run, so a crash leaves nothing orphaned."""

from __future__ import annotations

from pathlib import Path

import pytest

from podflow.deletion import delete_ended
from podflow.errors import StoreUnavailable
from podflow.paths import checkpoint_dir, run_dir
from podflow.store.base import Store
from tests.conftest import T0, at, make_run


def _with_files(data_dir: Path, run_id: str) -> None:
    for directory in (run_dir(data_dir, run_id), checkpoint_dir(data_dir, run_id)):
        directory.mkdir(parents=True)
        (directory / "episode.wav").write_bytes(b"RIFF")


def test_a_crash_between_files_and_rows_leaves_a_row_the_next_attempt_deletes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = store.create_run(make_run(T0))
    store.cancel(run.run_id, now=at(1))
    _with_files(tmp_path, run.run_id)

    def down(run_ids: object) -> list[str]:
        raise StoreUnavailable("the store went away")

    with monkeypatch.context() as patch:
        patch.setattr(store, "delete_ended", down)
        with pytest.raises(StoreUnavailable):
            delete_ended(store, [run.run_id], data_dir=tmp_path)
    # the row is still there, its files are gone: nothing on disk that no row names
    assert store.get_run(run.run_id) is not None
    assert not run_dir(tmp_path, run.run_id).exists() and not checkpoint_dir(tmp_path, run.run_id).exists()
    assert delete_ended(store, [run.run_id], data_dir=tmp_path) == [run.run_id]
    assert store.get_run(run.run_id) is None
    assert delete_ended(store, [], data_dir=tmp_path) == []
