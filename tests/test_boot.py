"""The one start-up sequence: settings or exit 78, logging, unknown-variable warnings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from podflow.boot import boot, config_errors
from podflow.errors import ConfigError
from podflow.exitcodes import RET_CONFIG


@pytest.fixture(autouse=True)
def _no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    level = logging.getLogger("podflow").level
    yield
    logging.getLogger("podflow").setLevel(level)


def test_an_invalid_setting_exits_78_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PODFLOW_HEARTBEAT_INTERVAL", "-1")
    with pytest.raises(SystemExit) as exited:
        boot()
    assert exited.value.code == RET_CONFIG
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("podflow: invalid configuration: PODFLOW_HEARTBEAT_INTERVAL='-1'")


def test_a_config_error_after_the_settings_ends_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited, config_errors():
        raise ConfigError("PODFLOW_GENERATOR='x:y': cannot import x")
    assert exited.value.code == RET_CONFIG
    assert capsys.readouterr().err == "podflow: PODFLOW_GENERATOR='x:y': cannot import x\n"


def test_each_unknown_podflow_variable_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"PODFLOW_CONCURENCY": "4", "PODFLOW_MODE": "queue", "HOME": "/root"}
    with caplog.at_level(logging.WARNING, logger="podflow.boot"):
        boot(logs="level", environ=environ)
    assert [r.getMessage() for r in caplog.records if r.name == "podflow.boot"] == [
        "unknown setting PODFLOW_CONCURENCY (did you mean PODFLOW_CONCURRENCY?)"
    ]


def test_a_helper_process_can_skip_the_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="podflow.boot"):
        boot(logs="level", warn_unknown=False, environ={"PODFLOW_TYPO": "1"})
    assert not [r for r in caplog.records if r.name == "podflow.boot"]


def test_under_dramatiqs_logging_only_podflows_level_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODFLOW_LOG_LEVEL", "debug")
    root_handlers = list(logging.getLogger().handlers)
    settings = boot(logs="level", environ={})
    assert settings.log_level == "DEBUG"
    assert logging.getLogger("podflow").level == logging.DEBUG
    assert logging.getLogger().handlers == root_handlers
