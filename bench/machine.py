"""What the figures were measured on: hardware, OS, versions, commit, date, load."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

__all__ = ["describe_machine", "load_average", "pressure"]

ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("dramatiq", "celery", "kombu", "redis", "starlette", "uvicorn", "pydantic")


def _first_line(argv: list[str], cwd: Path = ROOT) -> str:
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "--output=fstype,source", str(path)], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return " on ".join(out.strip().splitlines()[-1].split())


def load_average() -> str:
    """The 1/5/15-minute load averages: how busy the machine was (others' jobs too)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def pressure() -> str:
    """CPU and I/O pressure (Linux PSI, share of the last minute some task waited):
    other work competing for the cores and the disk."""
    shown = []
    for resource in ("cpu", "io"):
        try:
            line = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
        except (OSError, IndexError):
            continue
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        shown.append(f"{resource} {fields.get('avg60', '?')}%")
    return ", ".join(shown) or "unknown"


def describe_machine() -> dict[str, str]:
    """Everything a reader needs to weigh the figures, as strings."""
    kib = _proc_field("/proc/meminfo", "MemTotal").split()[0]
    commit = _first_line(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = _first_line(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git commit": commit + (" (uncommitted changes)" if dirty != "unknown" else ""),
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "ram": f"{int(kib) / 1024 / 1024:.1f} GiB" if kib.isdigit() else "unknown",
        "os": _os_name(),
        "python": platform.python_version(),
        "redis-server": _first_line(["redis-server", "--version"]),
        "filesystem (SQLite files)": _filesystem(ROOT),
        **{("redis-py" if package == "redis" else package): _version(package) for package in _PACKAGES},
        "load average at start": load_average(),
        "pressure at start (PSI avg60)": pressure(),
    }
