from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from podflow.errors import ConfigError
from podflow.settings import Settings, env_var, load_settings, old_setting_notes, unknown_variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_var(name), raising=False)


def test_defaults_match_the_documented_table() -> None:
    s = load_settings(None)
    assert s.broker_url == "redis://localhost:6379/0"
    assert s.result_backend == "" and s.mongodb_uri == "" and s.mongodb_database == "podcast_db"
    assert s.data_dir == Path("var") and s.store_kind == "sqlite"
    assert (s.soft_time_limit_s, s.time_limit_s) == (1800, 3600)
    assert (s.concurrency, s.mode, s.sweep_interval_s) == (4, "queue", 300)
    assert (s.heartbeat_interval_s, s.heartbeat_timeout_s, s.max_attempts) == (10, 120, 3)
    assert s.auth_token == "" and s.pending_timeout_s == 86400
    assert s.max_source_bytes == 5 * 1024 * 1024


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODFLOW_CONCURRENCY", "8")
    monkeypatch.setenv("PODFLOW_MODE", "thread")
    monkeypatch.setenv("MONGODB_URI", "mongodb://db:27017")
    monkeypatch.setenv("PODFLOW_API_TOKEN", "s3cret")
    s = load_settings(None)
    assert s.concurrency == 8 and s.mode == "thread" and s.store_kind == "mongo" and s.auth_token == "s3cret"


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PODFLOW_CONCURRENCY=6\nPODFLOW_MAX_ATTEMPTS=5\nUNRELATED=1\n")
    monkeypatch.setenv("PODFLOW_MAX_ATTEMPTS", "2")
    s = load_settings(env_file)
    assert s.concurrency == 6 and s.max_attempts == 2


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PODFLOW_CONCURRENCY", "zero", "PODFLOW_CONCURRENCY='zero': input should be a valid integer"),
        ("PODFLOW_CONCURRENCY", "0", "PODFLOW_CONCURRENCY='0': input should be greater than or equal to 1"),
        ("PODFLOW_MODE", "fast", "PODFLOW_MODE='fast': input should be 'queue' or 'thread'"),
        ("PODFLOW_BROKER_URL", "http://x", "PODFLOW_BROKER_URL='http://x': must start with redis://"),
        ("MONGODB_URI", "postgres://x", "MONGODB_URI='postgres://x': must be empty or start with mongodb://"),
        ("PODFLOW_TIME_LIMIT", "60", "PODFLOW_TIME_LIMIT must be greater than PODFLOW_SOFT_TIME_LIMIT"),
        ("PODFLOW_HEARTBEAT_TIMEOUT", "5", "PODFLOW_HEARTBEAT_TIMEOUT must be greater than PODFLOW_HEARTBEAT_INTERVAL"),
        ("PODFLOW_SCHEDULE_HORIZON", "300", "PODFLOW_SCHEDULE_HORIZON must be at least twice PODFLOW_SWEEP_INTERVAL"),
        ("PODFLOW_GENERATOR", "not a ref", "PODFLOW_GENERATOR='not a ref': must look like package.module:callable"),
        ("PODFLOW_LLM", "gpt", "PODFLOW_LLM='gpt': input should be 'none' or 'openai'"),
        ("PODFLOW_TTS", "say", "PODFLOW_TTS='say': input should be 'espeak', 'openai' or 'none'"),
        ("PODFLOW_LLM_BASE_URL", "localhost:11434/v1", "PODFLOW_LLM_BASE_URL='localhost:11434/v1': must be an http://"),
        ("PODFLOW_AUDIO_FORMAT", "ogg", "PODFLOW_AUDIO_FORMAT='ogg': input should be 'mp3' or 'wav'"),
        ("PODFLOW_TTS_MAX_CONCURRENCY", "-1", "PODFLOW_TTS_MAX_CONCURRENCY='-1': input should be greater than"),
        ("PODFLOW_LIMITS_URL", "amqp://x", "PODFLOW_LIMITS_URL='amqp://x': must be empty or a redis:// URL"),
        ("PODFLOW_WEBHOOK_URL", "hooks.example.com", "PODFLOW_WEBHOOK_URL='hooks.example.com': must be empty or an"),
        ("PODFLOW_WEBHOOK_SECRET", "s3cret", "PODFLOW_WEBHOOK_SECRET=<hidden>: must be whsec_ followed by base64"),
        ("PODFLOW_WEBHOOK_SECRET", "whsec_***", "PODFLOW_WEBHOOK_SECRET=<hidden>: must be whsec_ followed by base64"),
        ("PODFLOW_WEBHOOK_TIMEOUT", "0", "PODFLOW_WEBHOOK_TIMEOUT='0': input should be greater than 0"),
        ("PODFLOW_PUBLIC_URL", "podflow.example.com", "PODFLOW_PUBLIC_URL='podflow.example.com': must be empty"),
        ("PODFLOW_RETENTION_DAYS", "-1", "PODFLOW_RETENTION_DAYS='-1': input should be greater than or equal to 0"),
        ("PODFLOW_RETENTION_DAYS", "a month", "PODFLOW_RETENTION_DAYS='a month': input should be a valid number"),
        # further back than a date can go: the sweep's cut-off would fail every sweep
        ("PODFLOW_RETENTION_DAYS", "inf", "PODFLOW_RETENTION_DAYS='inf': input should be a finite number"),
        ("PODFLOW_RETENTION_DAYS", "1e6", "PODFLOW_RETENTION_DAYS='1e6': input should be less than or equal to"),
        ("PODFLOW_MAX_SCHEDULE_AHEAD", "0", "PODFLOW_MAX_SCHEDULE_AHEAD='0': input should be greater than 0"),
        ("PODFLOW_MAX_SCHEDULE_AHEAD", "inf", "PODFLOW_MAX_SCHEDULE_AHEAD='inf': input should be a finite number"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    message = str(err.value)
    assert "\n" not in message and expected in message


_FLOAT_VARIABLES = sorted(
    (field.json_schema_extra["env"], name)  # type: ignore[index]
    for name, field in Settings.model_fields.items()
    if field.annotation is float
)


@pytest.mark.parametrize(("variable", "field"), _FLOAT_VARIABLES)
def test_no_number_setting_takes_inf_or_nan_and_no_duration_more_than_a_century(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str
) -> None:
    for value in ("inf", "-inf", "nan", "1e309"):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError, match=f"{variable}='{value}': input should be a finite number"):
            load_settings(None)
    if field.endswith("_s"):  # the clock's arithmetic fails past a century: at start-up or in a sweep
        monkeypatch.setenv(variable, "1e12")
        with pytest.raises(ConfigError, match=f"{variable}='1e12': "):
            load_settings(None)


def test_the_api_token_is_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, api_token=123)
    assert "123" not in str(err.value) and "PODFLOW_API_TOKEN" in str(err.value)


def test_the_provider_settings_default_to_the_offline_generator() -> None:
    s = load_settings(None)
    assert (s.llm, s.tts, s.audio_format) == ("none", "espeak", "mp3")
    assert s.llm_base_url == s.tts_base_url == "https://api.openai.com/v1"
    assert (s.llm_model, s.tts_model) == ("gpt-4o-mini", "tts-1")
    assert (s.llm_max_concurrency, s.tts_max_concurrency, s.tts_parallelism) == (0, 0, 4)
    assert (s.provider_retries, s.provider_backoff_s, s.provider_rate_limit_wait_s) == (2, 1.0, 300.0)
    assert (s.llm_reasks, s.llm_source_chars, s.llm_timeout_s) == (2, 60_000, 300.0)
    assert s.caps_url == s.broker_url  # a Redis broker holds the caps' slots


def test_api_keys_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, llm_api_key=12345, tts_api_key=67890)
    assert "12345" not in str(err.value) and "67890" not in str(err.value)
    monkeypatch.setenv("PODFLOW_LLM_API_KEY", "sk-secret")
    assert "sk-secret" not in repr(load_settings(None))


def test_a_cap_on_a_rabbitmq_deployment_needs_a_redis_to_hold_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODFLOW_BROKER_URL", "amqp://guest:guest@localhost:5672/")
    monkeypatch.setenv("PODFLOW_TTS_MAX_CONCURRENCY", "3")
    with pytest.raises(ConfigError, match=r"PODFLOW_TTS_MAX_CONCURRENCY=3 must hold across hosts.*PODFLOW_LIMITS_URL"):
        load_settings(None)
    monkeypatch.setenv("PODFLOW_LIMITS_URL", "redis://caps:6379/2")
    assert load_settings(None).caps_url == "redis://caps:6379/2"
    monkeypatch.delenv("PODFLOW_LIMITS_URL")
    monkeypatch.setenv("PODFLOW_MODE", "thread")  # one process: the cap is held in memory
    assert load_settings(None).caps_url == ""


def test_misspelt_podflow_variables_are_pointed_out() -> None:
    notes = unknown_variables({"PODFLOW_CONCURENCY": "4", "PODFLOW_MODE": "queue", "PODFLOW_TEST_X": "1", "HOME": "/"})
    assert notes == ["PODFLOW_CONCURENCY (did you mean PODFLOW_CONCURRENCY?)"]


def test_the_cli_stops_on_a_bad_setting_with_one_line_and_exit_78(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PODFLOW_CONCURRENCY": "zero", "PODFLOW_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "podflow.cli", "config"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 78
    assert proc.stderr.strip().splitlines() == [
        "podflow: invalid configuration: PODFLOW_CONCURRENCY='zero': input should be a valid integer, "
        "unable to parse string as an integer"
    ]
    assert "Traceback" not in proc.stderr


# -- the old module's settings ----------------------------------------------------------


OLD = {
    "CELERY_BROKER_URL": "redis://old-host:6379/2",
    "CELERY_RESULT_BACKEND": "redis://old-host:6379/3",
    "CELERY_TASK_SOFT_TIME_LIMIT": "100",
    "CELERY_TASK_TIME_LIMIT": "200",
    "CELERY_CONCURRENCY": "7",
    "USE_CELERY": "false",
}


def test_the_old_modules_settings_are_honoured_when_their_podflow_names_are_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in OLD.items():
        monkeypatch.setenv(name, value)
    s = load_settings(None)
    assert (s.broker_url, s.result_backend) == ("redis://old-host:6379/2", "redis://old-host:6379/3")
    assert (s.soft_time_limit_s, s.time_limit_s, s.concurrency, s.mode) == (100, 200, 7, "thread")
    notes = old_setting_notes(s, environ=dict(OLD), env_file=None)
    assert len(notes) == len(OLD)
    assert notes[0] == "CELERY_BROKER_URL is the old module's name for PODFLOW_BROKER_URL: it is used, but rename it"
    assert "USE_CELERY is the old module's name for PODFLOW_MODE" in notes[-1]


def test_a_podflow_name_wins_over_the_old_one_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CELERY_CONCURRENCY", "7")
    monkeypatch.setenv("PODFLOW_CONCURRENCY", "2")
    env_file = tmp_path / ".env"
    env_file.write_text("USE_CELERY=true\nPODFLOW_MODE=thread\n")
    s = load_settings(env_file)
    assert (s.concurrency, s.mode) == (2, "thread")
    environ = {"CELERY_CONCURRENCY": "7", "PODFLOW_CONCURRENCY": "2"}
    assert old_setting_notes(s, environ=environ, env_file=env_file) == [
        "CELERY_CONCURRENCY and PODFLOW_CONCURRENCY are both set: PODFLOW_CONCURRENCY wins; remove CELERY_CONCURRENCY",
        "USE_CELERY and PODFLOW_MODE are both set: PODFLOW_MODE wins; remove USE_CELERY (true is PODFLOW_MODE=queue,"
        " false is PODFLOW_MODE=thread)",
    ]


def test_an_old_setting_podflow_cannot_use_is_ignored_with_a_warning_and_a_bad_one_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "mongodb://old-host/celery")
    s = load_settings(None)
    assert s.result_backend == ""
    [note] = old_setting_notes(s, environ={"CELERY_RESULT_BACKEND": "mongodb://x"}, env_file=None)
    assert note.startswith("CELERY_RESULT_BACKEND is the old module's name and its value is ignored")
    monkeypatch.setenv("USE_CELERY", "maybe")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert "USE_CELERY (the old name of PODFLOW_MODE)='maybe'" in str(err.value)


def test_the_mongodb_database_is_the_store_urls_else_mongodb_database_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_DATABASE", "old_db")
    monkeypatch.setenv("PODFLOW_STORE_URL", "mongodb://db1:27017/")
    s = load_settings(None)
    assert s.mongo_database == "old_db"
    [note] = old_setting_notes(s, environ={"MONGODB_DATABASE": "old_db"}, env_file=None)
    assert "PODFLOW_STORE_URL=mongodb://host/old_db" in note
    monkeypatch.setenv("PODFLOW_STORE_URL", "mongodb://db1:27017/podflow?replicaSet=rs0")
    s = load_settings(None)
    assert s.mongo_database == "podflow"
    [note] = old_setting_notes(s, environ={"MONGODB_DATABASE": "old_db"}, env_file=None)
    assert "the URL's ('podflow') wins" in note
    monkeypatch.delenv("MONGODB_DATABASE")
    assert load_settings(None).mongo_database == "podflow"


def test_each_old_setting_is_warned_about_once_at_start_up_in_json_when_asked(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PODFLOW_DATA_DIR": str(tmp_path),
        "PODFLOW_LOG_FORMAT": "json",
        "CELERY_CONCURRENCY": "3",
        "CELERY_TASK_TIME_LIMIT": "7200",
        "PODFLOW_TIME_LIMIT": "5400",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "podflow.cli", "config", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(proc.stdout)["PODFLOW_CONCURRENCY"], json.loads(proc.stdout)["PODFLOW_TIME_LIMIT"]) == (3, 5400)
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(line["level"], line["logger"]) for line in lines] == [("WARNING", "podflow.boot")] * 2
    assert [line["message"].split(" ")[0] for line in lines] == ["CELERY_TASK_TIME_LIMIT", "CELERY_CONCURRENCY"]
    assert all(set(line) >= {"time", "level", "logger", "message"} and "run_id" not in line for line in lines)


def test_the_webhook_settings_default_to_no_default_url_any_host_and_the_issues_timings() -> None:
    s = load_settings(None)
    assert (s.webhook_url, s.webhook_hosts, s.public_url) == ("", (), "")
    assert (s.webhook_timeout_s, s.webhook_retry_backoff_s, s.webhook_max_age_s) == (10.0, 5.0, 86400.0)
    assert s.webhook_targets.default_url is None


def test_a_default_webhook_url_must_be_on_an_allowed_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODFLOW_WEBHOOK_URL", "http://10.0.0.5/hook")
    monkeypatch.setenv("PODFLOW_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com")
    with pytest.raises(ConfigError, match="PODFLOW_WEBHOOK_URL names a host that PODFLOW_WEBHOOK_ALLOWED_HOSTS"):
        load_settings(None)
    monkeypatch.setenv("PODFLOW_WEBHOOK_ALLOWED_HOSTS", "*.example.com, 10.0.0.5")
    assert load_settings(None).webhook_hosts == ("*.example.com", "10.0.0.5")


def test_retention_is_off_by_default_and_its_days_reach_the_sweep_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from podflow.sweep import SweepPolicy

    s = load_settings(None)
    assert s.retention_days == 0 and SweepPolicy.from_settings(s).retention_s == 0  # 0: runs are kept forever
    for days, expected_s in (("30", 30 * 86400.0), ("0.5", 43200.0), ("36500", 36500 * 86400.0)):
        monkeypatch.setenv("PODFLOW_RETENTION_DAYS", days)
        assert SweepPolicy.from_settings(load_settings(None)).retention_s == expected_s, days


def test_how_far_ahead_a_run_may_be_scheduled_defaults_to_30_days_and_is_read_in_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(None).max_schedule_ahead_s == 30 * 86400
    monkeypatch.setenv("PODFLOW_MAX_SCHEDULE_AHEAD", "3600")
    assert load_settings(None).max_schedule_ahead_s == 3600


def test_the_schedule_horizon_defaults_to_an_hour_or_what_a_long_sweep_interval_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(None).schedule_horizon_s == 3600
    monkeypatch.setenv("PODFLOW_SWEEP_INTERVAL", "3600")  # set before the horizon existed: still starts
    assert load_settings(None).schedule_horizon_s == 2 * 3600 + 10
    monkeypatch.setenv("PODFLOW_SCHEDULE_HORIZON", "7300")
    assert load_settings(None).schedule_horizon_s == 7300
    monkeypatch.setenv("PODFLOW_SCHEDULE_HORIZON", "3600")  # set, and too short for the interval
    with pytest.raises(ConfigError, match="PODFLOW_SCHEDULE_HORIZON must be at least twice PODFLOW_SWEEP_INTERVAL"):
        load_settings(None)
