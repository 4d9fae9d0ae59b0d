"""``podflow up``: the local stack in one command (what ``make run`` runs).

1. In queue mode, when nothing answers at PODFLOW_BROKER_URL and it names a
   local Redis (``redis://localhost``, ``127.0.0.1`` or ``[::1]``), start a
   ``redis-server`` on that port with its data under PODFLOW_DATA_DIR/redis/
   (append-only file, so queued messages survive a restart). A Redis that
   answers is used as it is; a remote broker that does not answer is an error.
2. Print the API address.
3. Run ``honcho start`` on the Procfile (``api``, ``worker``, ``scheduler``;
   in thread mode only ``api``), with this virtualenv's ``bin`` on PATH.

Ctrl-C (SIGINT) or SIGTERM stops honcho, which stops every process; the Redis
started here is stopped last, after the workers have put back what they held.
Honcho and Redis run in sessions of their own, so a terminal's Ctrl-C reaches
them once, through this process, in that order.

honcho itself loads ``.env`` *over* the environment; ``podflow up`` gives it
no env file, so each podflow process reads ``.env`` under the environment, as
``podflow config`` shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from honcho.environ import parse_procfile
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import BrokerUnavailable
from ..exitcodes import RET_OK, RET_UNAVAILABLE, RET_USAGE
from ..settings import Settings
from ..worker.broker import build_broker, ping_broker
from ._common import api_address
from ._process import run_relaying

__all__ = ["LocalRedis", "LocalRedisAddress", "local_redis_address", "register"]

_LOCAL_HOSTS = {"localhost": ["127.0.0.1", "-::1"], "127.0.0.1": ["127.0.0.1"], "::1": ["::1"]}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("up", help="start the local stack: redis if needed, then honcho start")
    parser.add_argument("processes", nargs="*", help="Procfile processes to start (default: all; thread mode: api)")
    parser.add_argument("--procfile", default="Procfile", help="the Procfile (default: ./Procfile)")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class LocalRedisAddress:
    """Where a local Redis URL points: the port, the interfaces to bind, the password."""

    port: int
    bind: list[str]
    password: str | None = None


def local_redis_address(url: str) -> LocalRedisAddress | None:
    """The address to start a Redis at for ``url``; None unless it is a plain
    ``redis://`` URL on this host (TLS, sockets and remote hosts are not ours to start)."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or (parts.hostname or "localhost") not in _LOCAL_HOSTS:
        return None
    return LocalRedisAddress(parts.port or 6379, _LOCAL_HOSTS[parts.hostname or "localhost"], parts.password)


class LocalRedis:
    """A ``redis-server`` child in its own session, data and log under ``data_dir``."""

    def __init__(self, address: LocalRedisAddress, *, data_dir: Path) -> None:
        self.address = address
        self.data_dir = Path(data_dir).resolve()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BrokerUnavailable("redis-server is not installed; install it with: apt-get install redis-server")
        argv = [binary, "--port", str(self.address.port), "--bind", *self.address.bind, "--dir", str(self.data_dir),
                "--appendonly", "yes", "--logfile", str(self.log_path)]  # fmt: skip
        if self.address.password:
            argv += ["--requirepass", self.address.password]
        return argv

    def start(self, *, timeout_s: float = 10.0) -> LocalRedis:
        """Start it and wait until it answers.

        Raises: BrokerUnavailable, with the end of its log, if it does not.
        """
        argv = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # its own session: a terminal's Ctrl-C must not stop it before the workers
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(
            host=self.address.bind[0],
            port=self.address.port,
            password=self.address.password,
            retry=Retry(NoBackoff(), 0),  # we poll ourselves; redis-py's default retries take seconds
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise BrokerUnavailable(f"redis-server did not start: {self._log_tail()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis syncs its append-only file and exits), SIGKILL after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _broker_answers(settings: Settings) -> bool:
    broker = build_broker(settings, role="cli")
    try:
        ping_broker(broker)
        return True
    except BrokerUnavailable:
        return False
    finally:
        broker.close()


def ensure_broker(settings: Settings) -> LocalRedis | None:
    """Start a local Redis when PODFLOW_BROKER_URL needs one; the one started, or None.

    Raises: BrokerUnavailable when nothing answers and none can be started here.
    """
    if settings.mode == "thread" or _broker_answers(settings):
        return None
    address = local_redis_address(settings.broker_url)
    if address is None:
        raise BrokerUnavailable(
            f"nothing answers at PODFLOW_BROKER_URL={settings.broker_url}, and it is not a local redis:// "
            "URL that podflow could start; start that broker or change the URL"
        )
    return LocalRedis(address, data_dir=settings.data_dir / "redis").start()


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # `podflow` in the Procfile is this virtualenv's
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env.setdefault("PYTHONUNBUFFERED", "1")  # lines through honcho's pipes as they come
    return env


def run(args: argparse.Namespace, settings: Settings) -> int:
    procfile = Path(args.procfile)
    if not procfile.is_file():
        print(f"podflow: no Procfile at {procfile.resolve()}; run this in the podflow checkout or pass --procfile",
              file=sys.stderr)  # fmt: skip
        return RET_USAGE
    declared = parse_procfile(procfile.read_text(encoding="utf-8")).processes
    processes = args.processes or (["api"] if settings.mode == "thread" else list(declared))
    unknown = [name for name in processes if name not in declared]
    if unknown:
        print(f"podflow: not in {procfile}: {', '.join(unknown)} (it has {', '.join(declared)})", file=sys.stderr)
        return RET_USAGE
    try:
        local_redis = ensure_broker(settings)
    except BrokerUnavailable as exc:
        print(f"podflow: {exc}", file=sys.stderr)
        return RET_UNAVAILABLE
    try:
        if local_redis is not None:
            print(f"podflow: started redis-server on port {local_redis.address.port} "
                  f"(data in {local_redis.data_dir}, log {local_redis.log_path})")  # fmt: skip
        if "api" in processes:
            print(f"podflow: the API will listen at {api_address(settings)}")
        sys.stdout.flush()
        argv = [sys.executable, "-m", "honcho", "start", "--procfile", str(procfile), "--env", os.devnull, *processes]
        # honcho stops everything on SIGINT/SIGTERM (exit 130/143) but dies of SIGHUP
        code, stopped = run_relaying(argv, env=_environment(), translate={signal.SIGHUP: signal.SIGTERM})
        return RET_OK if stopped and code in (0, 130, 143) else code
    finally:
        if local_redis is not None:
            local_redis.stop()
            print("podflow: redis-server stopped")
