"""``podflow up`` (``make run``): a local Redis only when needed, then the Procfile stack, stopped cleanly;
and the end-to-end test of that stack, fed by ``podflow submit``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from podflow.cli import main
from podflow.cli.up import LocalRedisAddress, ensure_broker, local_redis_address
from podflow.errors import BrokerUnavailable
from podflow.exitcodes import RET_UNAVAILABLE, RET_USAGE
from podflow.settings import load_settings
from tests.execution import ROOT, wait_for, worker_env
from tests.servers import free_port


def answers(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6380/0", LocalRedisAddress(6380, ["127.0.0.1", "-::1"])),
        ("redis://127.0.0.1/2", LocalRedisAddress(6379, ["127.0.0.1"])),
        ("redis://:pw@[::1]:7000", LocalRedisAddress(7000, ["::1"], "pw")),
        ("redis://cache.internal:6379/0", None),
        ("rediss://localhost:6379/0", None),
        ("amqp://guest:guest@localhost:5672/", None),
    ],
)
def test_only_a_plain_local_redis_url_is_one_podflow_may_start(url: str, expected: LocalRedisAddress | None) -> None:
    assert local_redis_address(url) == expected


def test_a_redis_that_answers_is_used_as_it_is(redis_url: str, tmp_path: Path) -> None:
    assert ensure_broker(load_settings(env_file=None, broker_url=redis_url, data_dir=tmp_path)) is None
    assert not (tmp_path / "redis").exists()


def test_nothing_answering_at_a_local_url_starts_a_redis_with_its_data_in_the_data_dir(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{port}/0", data_dir=tmp_path)
    started = ensure_broker(settings)
    assert started is not None
    try:
        assert answers(port)
        assert os.getpgid(started.proc.pid) != os.getpgid(0)  # its own session: Ctrl-C does not reach it
        assert (tmp_path / "redis" / "redis.log").exists()
    finally:
        started.stop()
    assert not answers(port)


def test_nothing_answering_at_a_remote_url_is_an_error_not_a_local_redis(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, broker_url="redis://broker.invalid:6379/0", data_dir=tmp_path)
    with pytest.raises(BrokerUnavailable, match="not a local redis:// URL"):
        ensure_broker(settings)


def test_thread_mode_needs_no_broker(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, mode="thread", broker_url=f"redis://127.0.0.1:{free_port()}/0")
    assert ensure_broker(settings) is None


def test_an_unknown_process_or_a_missing_procfile_is_a_usage_error(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env()
    (data_dir / "Procfile").write_text((ROOT / "Procfile").read_text())
    assert main(["up", "web"]) == RET_USAGE
    assert "not in Procfile: web (it has api, worker, scheduler)" in capsys.readouterr().err
    assert main(["up", "--procfile", "nowhere/Procfile"]) == RET_USAGE


def test_a_remote_broker_that_does_not_answer_exits_69(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL="redis://broker.invalid:6379/0")
    assert main(["up", "--procfile", str(ROOT / "Procfile"), "worker"]) == RET_UNAVAILABLE
    assert "nothing answers at PODFLOW_BROKER_URL" in capsys.readouterr().err


def stack_processes(data_dir: Path, redis_port: int) -> list[str]:
    """This test's stack processes still alive, as ``pid command line``: those whose
    environment holds its PODFLOW_DATA_DIR, and its redis-server (which writes its
    title over its environment, so it is found by its port)."""
    entry, title = f"PODFLOW_DATA_DIR={data_dir}".encode(), f"redis-server 127.0.0.1:{redis_port}"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cmdline and (entry in environ or title in cmdline):  # a zombie has no command line
            found.append(f"{proc.name} {cmdline}")
    return found


@contextlib.contextmanager
def shown_on_failure(*logs: Path) -> Iterator[None]:
    """Print ``logs`` when the block fails, for pytest to show with the failure."""
    try:
        yield
    except BaseException:
        for log in logs:
            print(f"===== {log.name} =====\n{log.read_text(errors='replace') if log.exists() else '(none)'}")
        raise


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_procfile_stack_turns_an_uploaded_source_into_an_mp3_and_stops_everything_on_ctrl_c(
    tmp_path: Path,
) -> None:
    """The whole local stack, as ``make run`` starts it: `podflow up` starts redis-server, then
    the API, a worker and the scheduler on free ports; `podflow submit` uploads a document,
    submits it over HTTP and follows it to SUCCESS; the MP3 is real speech; Ctrl-C stops it all."""
    redis_port, api_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = worker_env(
        data_dir=tmp_path,
        broker_url=f"redis://127.0.0.1:{redis_port}/0",
        PODFLOW_GENERATOR="podflow.generation.builtin:generate",
        PODFLOW_API_HOST="127.0.0.1",
        PODFLOW_API_PORT=str(api_port),
        PODFLOW_SWEEP_INTERVAL="0.5",
    )
    env["PATH"] = "/usr/bin:/bin"  # `podflow` must come from up's own virtualenv
    podflow = str(Path(sys.executable).parent / "podflow")
    log, out, err = tmp_path / "up.log", tmp_path / "submit.out", tmp_path / "submit.err"
    (tmp_path / "notes.md").write_text(
        "# Crash-safe podcasts\nWorkers crash and brokers blip. The sweep re-sends lost runs.\n\n"
        "## Retries\nTransient failures are retried with backoff, and a finished run is never overwritten.\n",
        encoding="utf-8",
    )
    with open(log, "wb") as output:
        up = subprocess.Popen([podflow, "up"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        with shown_on_failure(log, out, err):
            wait_for(lambda: ready(api) or up.poll() is not None, timeout=20, what="GET /readyz")
            assert up.poll() is None, "podflow up exited"
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                submitted = subprocess.run(
                    [podflow, "submit", "--episode-profile", "quick_brief", "--speaker-profile", "solo",
                     "--name", "Crash-safe podcasts", "notes.md"],
                    cwd=tmp_path, env=env, stdout=stdout, stderr=stderr, timeout=30,
                )  # fmt: skip
            assert submitted.returncode == 0
            shown = dict(line.split(None, 1) for line in out.read_text().splitlines())
            assert shown["status"] == "SUCCESS" and "uploaded as src_" in err.read_text()
            audio = Path(shown["audio"])
            assert audio.is_relative_to(tmp_path / "podcasts" / shown["run_id"])
            assert audio.suffix == ".mp3"  # PODFLOW_AUDIO_FORMAT's default
            decoded = subprocess.run(
                ["ffmpeg", "-v", "error", "-i", str(audio), "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1"],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
            assert len(decoded) / 2 / 16000 > 1.0
            served = httpx.get(shown["audio_url"], timeout=10)
            assert served.headers["content-type"] == "audio/mpeg" and served.content == audio.read_bytes()

            wait_for(lambda: "sweep: time_limit=0" in log.read_text(), what="a sweep")
            up.send_signal(signal.SIGINT)  # what Ctrl-C sends it
            assert up.wait(20) == 0
            assert stack_processes(tmp_path, redis_port) == []
    finally:
        if up.poll() is None:  # a failure above: stop the stack the same way, or at all
            up.send_signal(signal.SIGINT)
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        for leftover in stack_processes(tmp_path, redis_port):  # only this test's
            os.kill(int(leftover.split()[0]), signal.SIGKILL)
    text = log.read_text()
    assert f"started redis-server on port {redis_port}" in text and text.rstrip().endswith("redis-server stopped")
    assert f"the API will listen at {api}/" in text
    assert "Worker has been shut down" in text and "scheduler stopped" in text
    assert not answers(redis_port) and not ready(api)
    assert (tmp_path / "redis" / "appendonlydir").is_dir()
