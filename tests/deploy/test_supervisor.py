"""deploy/supervisor/podflow.conf under Debian's supervisord: three programs RUNNING, a run done, a clean stop.

The test renders the shipped file for this checkout (its paths: the install
directory, the env file, the log directory; no ``user=``, the test is not root's
podflow user) and includes it from a main configuration of its own: supervisord in
the foreground (``nodaemon``), its own socket, its own log. The programs' stop
signals and timeouts are checked against the systemd units'.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from podflow.cli.worker import SHUTDOWN_TIMEOUT_S
from tests.deploy.test_systemd import UNITS, one, parse, seconds
from tests.execution import ROOT, wait_for
from tests.servers import free_port

CONF = ROOT / "deploy" / "supervisor" / "podflow.conf"
PROGRAMS = {"podflow-api": "podflow-api.service", "podflow-worker": "podflow-worker.service",
            "podflow-scheduler": "podflow-scheduler.service"}  # fmt: skip
SUPERVISORD = shutil.which("supervisord") or "/usr/bin/supervisord"


def programs() -> dict[str, configparser.SectionProxy]:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(CONF, encoding="utf-8")
    return {name: parser[f"program:{name}"] for name in PROGRAMS}


def test_each_program_stops_as_its_systemd_unit_does() -> None:
    for name, program in programs().items():
        unit = parse(UNITS / PROGRAMS[name])
        assert program["stopsignal"] == "TERM"
        assert float(program["stopwaitsecs"]) == seconds(one(unit, "Service", "TimeoutStopSec")), name
        assert program["stopasgroup"] == "false" and program["killasgroup"] == "true"  # KillMode=mixed
        assert program["user"] == one(unit, "Service", "User") and program["directory"] == "/opt/podflow"
        assert ". /etc/podflow/podflow.env; exec /opt/podflow/.venv/bin/" in program["command"]
        assert "78" in program["exitcodes"].split(",") and program["autorestart"] == "unexpected"
    assert float(programs()["podflow-worker"]["stopwaitsecs"]) > SHUTDOWN_TIMEOUT_S


def render(tmp_path: Path, env: dict[str, str]) -> Path:
    """The shipped file with this checkout's paths, and a main configuration including it."""
    env_file = tmp_path / "podflow.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    logs = tmp_path / "log"
    logs.mkdir()
    text = CONF.read_text(encoding="utf-8")
    text = text.replace("/opt/podflow/.venv/bin/", f"{Path(sys.executable).parent}/")
    text = text.replace("/etc/podflow/podflow.env", str(env_file)).replace("/var/log/podflow", str(logs))
    text = text.replace("/opt/podflow", str(ROOT))
    text = re.sub(r"(?m)^user=.*\n", "", text)
    programs_file = tmp_path / "podflow.conf"
    programs_file.write_text(text, encoding="utf-8")
    sock = tmp_path / "supervisor.sock"
    main = tmp_path / "supervisord.conf"
    main.write_text(
        f"""[unix_http_server]
file={sock}

[supervisord]
nodaemon=true
logfile={tmp_path / "supervisord.log"}
pidfile={tmp_path / "supervisord.pid"}
childlogdir={logs}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[include]
files = {programs_file}
""",
        encoding="utf-8",
    )
    return main


def ctl(main: Path, *args: str) -> str:
    done = subprocess.run(["supervisorctl", "-c", str(main), *args], capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.fixture
def supervised(tmp_path: Path, worker_redis_url: str) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    if not shutil.which("supervisord"):
        pytest.skip("supervisord is absent: `make test` installs Debian's supervisor")
    port = free_port()
    data = tmp_path / "data"
    env = {
        "PODFLOW_DATA_DIR": str(data),
        "PODFLOW_BROKER_URL": worker_redis_url,
        "PODFLOW_API_PORT": str(port),
        "PODFLOW_WORKER_PROCESSES": "1",
        "PODFLOW_CONCURRENCY": "2",
        "PODFLOW_AUDIO_FORMAT": "wav",
        "PODFLOW_SWEEP_INTERVAL": "2",
        "PODFLOW_HEARTBEAT_INTERVAL": "0.5",
        "PODFLOW_HEARTBEAT_TIMEOUT": "10",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    main = render(tmp_path, env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_", "CELERY_"))}
    proc = subprocess.Popen([SUPERVISORD, "-c", str(main)], env=clean, cwd=tmp_path, start_new_session=True)
    try:
        yield main, f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            ctl(main, "shutdown")
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_supervisord_runs_the_three_programs_a_run_succeeds_and_they_stop_cleanly(
    supervised: tuple[Path, str, subprocess.Popen[bytes]],
) -> None:
    main, url, proc = supervised

    def running() -> bool:
        status = ctl(main, "status")
        return status.count("RUNNING") == 3

    wait_for(running, timeout=60, interval=0.5, what="three programs RUNNING")
    status = ctl(main, "status")
    assert {line.split()[0] for line in status.splitlines()} == {f"podflow:{name}" for name in PROGRAMS}
    wait_for(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200 if _up(url) else False,
             timeout=60, interval=0.5, what="the API ready")  # fmt: skip
    assert httpx.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
    with httpx.Client(base_url=url, timeout=10) as client:
        source = client.post("/api/sources", json={"content": "Supervisor keeps processes up.", "title": "Ops"})
        body = {"episode_profile": "quick_brief", "speaker_profile": "solo", "episode_name": "Supervised",
                "source_ids": [source.json()["source_id"]]}  # fmt: skip
        run_id = client.post("/api/podcast/generate", json=body).json()["run_id"]
        done = wait_for(
            lambda: (r := client.get(f"/api/podcast/runs/{run_id}").json())["status"] in ("SUCCESS", "FAILURE") and r,
            timeout=90,
            interval=0.5,
            what="the run through the supervised worker",
        )
    assert done["status"] == "SUCCESS", done

    started = time.monotonic()
    stopped = ctl(main, "stop", "podflow:*")
    assert sorted(stopped.split()) == sorted([f"podflow:{name}:" for name in PROGRAMS] + ["stopped"] * 3), stopped
    assert time.monotonic() - started < 60
    log = (main.parent / "supervisord.log").read_text(encoding="utf-8")
    for name in PROGRAMS:  # SIGTERM, and each exited 0 by itself: none was killed
        assert f"stopped: {name} (exit status 0)" in log, log
    assert "SIGKILL" not in log
    ctl(main, "shutdown")
    assert proc.wait(60) == 0


def _up(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return True
