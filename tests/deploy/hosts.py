"""Simulated hosts for deployment tests: Linux network namespaces joined to the root
namespace by veth pairs, and a private PostgreSQL listening on the root side of them.

Every name carries the test process's pid, so runs never collide; :meth:`Host.remove`
and :meth:`PrivatePostgres.stop` always clean up (namespaces, links, processes, files).
Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Host", "PrivatePostgres", "can_build_hosts", "subnet_base"]


def can_build_hosts() -> str | None:
    """Why hosts cannot be built here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL's server binaries are not installed"
    return None


def subnet_base() -> str:
    """A 10.213.N.0/24 of this process's own (link-local to its veth pairs only)."""
    return f"10.213.{os.getpid() % 250}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Host:
    """One namespace ``ns`` with a veth pair: ``root_ip`` on the root side, ``ip`` inside."""

    tag: str
    index: int
    ns: str = ""
    root_link: str = ""
    root_ip: str = ""
    ip: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        pid = os.getpid()
        self.ns = f"podflow-{pid}-{self.tag}"
        self.root_link = f"pf{pid}{self.tag}"[:15]
        base = subnet_base()
        self.root_ip, self.ip = f"{base}.{4 * self.index + 1}", f"{base}.{4 * self.index + 2}"

    def create(self) -> Host:
        inner = f"{self.root_link[:13]}i"
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.root_link, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", self.ns)
        _ip("addr", "add", f"{self.root_ip}/30", "dev", self.root_link)
        _ip("link", "set", self.root_link, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.ip}/30", "dev", inner)
        _ip("-n", self.ns, "link", "set", inner, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        return self

    def cut(self) -> None:
        """The host's only link goes down: it reaches neither the broker nor the store."""
        _ip("link", "set", self.root_link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.root_link, "up")

    def start(self, argv: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *argv],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True, timeout=10)
        return [int(p) for p in out.stdout.split()]

    def kill_all(self) -> int:
        """SIGKILL every process in the namespace, as a host losing power; how many."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        return len(pids)

    def remove(self) -> None:
        self.kill_all()
        subprocess.run(["ip", "link", "del", self.root_link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=10)


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` as user postgres (initdb refuses root), in a directory of
    its own, listening on 127.0.0.1 and the given addresses, trusting those subnets."""

    def __init__(self, *, port: int, listen: list[str], trust: list[str]) -> None:
        bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
        self.initdb, self.pg_ctl = str(bindir / "initdb"), str(bindir / "pg_ctl")
        self.port = port
        self.listen = ["127.0.0.1", *listen]
        self.trust = ["127.0.0.1/32", *trust]
        self.dir = Path(tempfile.mkdtemp(prefix=f"podflow-pg-{os.getpid()}-"))
        self.data = self.dir / "data"

    def url(self, host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> PrivatePostgres:
        shutil.chown(self.dir, "postgres")
        self._as_postgres(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{','.join(self.listen)}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
            )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {net} trust\n" for net in self.trust)
        self._as_postgres(self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "start")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._as_postgres(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            time.sleep(0.1)
            shutil.rmtree(self.dir, ignore_errors=True)
