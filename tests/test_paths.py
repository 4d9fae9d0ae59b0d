"""Where a run's files live: one list of names for the runner, the lifecycle and the API."""

from __future__ import annotations

from pathlib import Path, PurePath

from podflow import paths
from podflow.generation.base import GenerationResult
from podflow.models import RunResult


def test_a_runs_files_and_staging_directories_live_under_podcasts(tmp_path: Path) -> None:
    assert paths.run_dir(tmp_path, "run_x") == tmp_path / "podcasts" / "run_x"
    assert paths.staging_dir(tmp_path, "run_x", 3) == tmp_path / "podcasts" / "run_x" / ".attempt-3"


def test_staging_attempts_lists_only_attempt_directories(tmp_path: Path) -> None:
    for name in (".attempt-1", ".attempt-12", ".attempt-x", "episode.wav"):
        (paths.run_dir(tmp_path, "run_x") / name).mkdir(parents=True)
    assert sorted(attempt for attempt, _ in paths.staging_attempts(tmp_path, "run_x")) == [1, 12]
    assert list(paths.staging_attempts(tmp_path, "run_absent")) == []


def test_stored_paths_are_relative_to_the_data_dir_with_slashes() -> None:
    assert paths.stored_path("run_x", PurePath("audio") / "episode.wav") == "podcasts/run_x/audio/episode.wav"


def test_every_result_file_is_a_field_of_both_results() -> None:
    for field in paths.RESULT_FILES.values():
        assert field in RunResult.model_fields
        assert field in GenerationResult.__dataclass_fields__
