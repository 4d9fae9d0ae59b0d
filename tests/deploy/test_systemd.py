"""The systemd units in deploy/systemd: restart policy, stop timeouts, user, hardening, and a clean verify."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from podflow.cli.worker import SHUTDOWN_TIMEOUT_S, command
from podflow.exitcodes import RET_CONFIG, RET_UNAVAILABLE
from podflow.settings import load_settings
from tests.execution import ROOT

UNITS = ROOT / "deploy" / "systemd"
NAMES = ["podflow-api.service", "podflow-worker.service", "podflow-scheduler.service"]
INSTALL_DIR = "/opt/podflow"
ENV_FILE = "/etc/podflow/podflow.env"

Unit = dict[str, dict[str, list[str]]]


def parse(path: Path) -> Unit:
    """``{section: {key: [values...]}}``; keys may repeat, as systemd allows."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


@pytest.mark.parametrize("name", NAMES)
def test_each_unit_runs_as_the_podflow_user_from_the_env_file_and_restarts_unless_misconfigured(name: str) -> None:
    unit = parse(UNITS / name)
    assert one(unit, "Service", "Type") == "simple"
    assert (one(unit, "Service", "User"), one(unit, "Service", "Group")) == ("podflow", "podflow")
    assert one(unit, "Service", "WorkingDirectory") == INSTALL_DIR
    assert one(unit, "Service", "EnvironmentFile") == ENV_FILE
    assert one(unit, "Service", "ExecStart").startswith(f"{INSTALL_DIR}/.venv/bin/")
    assert one(unit, "Service", "Restart") == "on-failure" and seconds(one(unit, "Service", "RestartSec")) >= 1
    prevented = one(unit, "Service", "RestartPreventExitStatus").split()
    assert str(RET_CONFIG) in prevented and str(RET_UNAVAILABLE) not in prevented
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 3 and seconds(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("name", NAMES)
def test_each_unit_is_hardened_and_may_write_only_the_data_dir(name: str) -> None:
    unit = parse(UNITS / name)
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "PrivateTmp") == "yes"
    data_dir = [line for line in (UNITS / "podflow.env.example").read_text().splitlines()
                if line.startswith("PODFLOW_DATA_DIR=")]  # fmt: skip
    assert [f"PODFLOW_DATA_DIR={one(unit, 'Service', 'ReadWritePaths')}"] == data_dir


def test_the_worker_unit_runs_what_podflow_worker_runs_and_outlasts_its_shutdown_timeout() -> None:
    unit = parse(UNITS / "podflow-worker.service")
    exec_start = shlex.split(one(unit, "Service", "ExecStart"))
    assert exec_start[0] == f"{INSTALL_DIR}/.venv/bin/dramatiq"
    settings = load_settings(env_file=None)
    expected = command(settings)[3:]  # after `python -m dramatiq`
    expected[expected.index("--processes") + 1] = "${PODFLOW_WORKER_PROCESSES}"
    expected[expected.index("--threads") + 1] = "${PODFLOW_CONCURRENCY}"
    at = expected.index("--queues")  # every band's queue
    expected[at + 1 : at + 4] = ["${PODFLOW_QUEUE}.high", "${PODFLOW_QUEUE}", "${PODFLOW_QUEUE}.low"]
    assert exec_start[1:] == expected
    defaults = dict(item.split("=") for item in one(unit, "Service", "Environment").split())
    # the env file may override them
    assert defaults == {"PODFLOW_WORKER_PROCESSES": "1", "PODFLOW_CONCURRENCY": "4", "PODFLOW_QUEUE": "podcast"}
    assert one(unit, "Service", "KillMode") == "mixed"
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= SHUTDOWN_TIMEOUT_S + 30


def test_the_scheduler_and_api_units_run_podflow_commands() -> None:
    assert one(parse(UNITS / "podflow-scheduler.service"), "Service", "ExecStart").endswith("/podflow scheduler")
    assert one(parse(UNITS / "podflow-api.service"), "Service", "ExecStart").endswith("/podflow api")


def test_the_example_env_file_names_only_real_settings() -> None:
    from podflow.settings import unknown_variables

    lines = (UNITS / "podflow.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names and not unknown_variables(dict.fromkeys(names, ""))
    load_settings(env_file=UNITS / "podflow.env.example")  # and every value is valid


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing_to_complain_about(tmp_path: Path) -> None:
    # verify checks that ExecStart programs exist: point the units at this checkout
    for name in NAMES:
        text = (UNITS / name).read_text().replace(ENV_FILE, str(UNITS / "podflow.env.example"))
        (tmp_path / name).write_text(text.replace(INSTALL_DIR, str(ROOT)))
    try:
        out = subprocess.run(["systemd-analyze", "verify", *NAMES], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"systemd-analyze does not work here: {exc}")
    if out.returncode != 0 and "Failed to " in out.stderr and "podflow" not in out.stderr:
        pytest.skip(f"systemd-analyze does not work here: {out.stderr.strip()}")
    assert out.returncode == 0 and out.stderr == "", out.stderr
