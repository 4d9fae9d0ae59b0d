"""``podflow status``: queues, workers and runs at a glance (what ``celery inspect`` and Flower gave).

Reads the broker (:func:`podflow.monitoring.snapshot.inspect_broker`) and the store
(:func:`podflow.monitoring.snapshot.inspect_store`); prints what it could read, and exits
69 (RET_UNAVAILABLE) naming whichever could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from ..checkpoints import disk_usage
from ..errors import BrokerUnavailable, StoreError
from ..exitcodes import RET_OK, RET_UNAVAILABLE
from ..monitoring.snapshot import inspect_broker, inspect_store
from ..settings import Settings
from ..timeutil import utcnow
from ..worker.broker import build_broker
from ._common import duration, print_json, redact, store_for, table

__all__ = ["collect", "register", "render", "run"]

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="queues, workers and runs at a glance")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    parser.set_defaults(handler=run)


def collect(settings: Settings, *, now: datetime) -> dict[str, Any]:
    """The status as a JSON-ready dict; a part that could not be read has an ``error``."""
    report: dict[str, Any] = {"at": now.isoformat(), "mode": settings.mode}
    report["broker"] = None if settings.mode == "thread" else _broker_part(settings, now)
    location = redact(settings.store_location)
    store: dict[str, Any] = {"kind": settings.store_kind, "location": location}
    try:
        with store_for(settings) as opened:
            store.update(inspect_store(opened, now=now).as_dict())
    except StoreError as exc:
        store["error"] = str(exc)
    report["store"] = store
    report["checkpoints"] = disk_usage(settings.data_dir).as_dict()
    return report


def _broker_part(settings: Settings, now: datetime) -> dict[str, Any]:
    part: dict[str, Any] = {"url": redact(settings.broker_url)}
    broker = build_broker(settings, role="cli")
    try:
        part.update(inspect_broker(broker, now=now).as_dict())
    except BrokerUnavailable as exc:
        part["error"] = str(exc)
    finally:
        broker.close()
    return part


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = collect(settings, now=utcnow())
    if args.json:
        print_json(report)
    else:
        print(render(report))
    failed = [name for name in ("broker", "store") if report[name] and "error" in report[name]]
    for name in failed:
        print(f"podflow: {name} unavailable: {report[name]['error']}", file=sys.stderr)
    return RET_UNAVAILABLE if failed else RET_OK


def render(report: dict[str, Any]) -> str:
    """The human-readable status."""
    lines: list[str] = []
    broker = report["broker"]
    if broker is None:
        lines.append("broker  none (PODFLOW_MODE=thread: runs execute inside the API process)")
    else:
        kind = broker.get("kind")
        lines.append(f"broker  {kind + ' ' if kind else ''}{broker['url']}")
        if "error" in broker:
            lines.append(f"  UNAVAILABLE: {broker['error']}")
        else:
            lines += _render_broker(broker)
    store = report["store"]
    lines.append(f"store   {store['kind']} {store['location']}")
    if "error" in store:
        lines.append(f"  UNAVAILABLE: {store['error']}")
    else:
        lines += _render_store(store)
    lines.append(_render_checkpoints(report["checkpoints"]))
    return "\n".join(lines)


def _render_checkpoints(part: dict[str, Any]) -> str:
    size = part["bytes"]
    shown = f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{size:,} bytes"
    return f"checkpoints  {part['runs']} run(s), {part['files']:,} file(s), {shown} in {part['path']}"


def _render_broker(broker: dict[str, Any]) -> list[str]:
    queues = [[q["name"], q["ready"], q["delayed"], q["dead"], "-" if q["unacked"] is None else q["unacked"]]
              for q in broker["queues"]]  # fmt: skip
    lines = [table(["queue", "ready", "delayed", "dead", "unacked"], queues, indent="  ")]
    workers = broker["workers"]
    if workers is None:
        lines.append(f"  workers: unknown ({broker['note']})")
        return lines
    timeout = broker["heartbeat_timeout_s"]
    dead = len(workers) - broker["workers_alive"]
    summary = f"  workers: {broker['workers_alive']} alive"
    lines.append(summary + (f", {dead} dead (silent for {timeout:g} s or more)" if dead else ""))
    lines += [_render_client(w, dead_label="DEAD") for w in workers]
    if broker["clients"]:
        lines.append("  other broker clients (senders):")
        lines += [_render_client(c, dead_label="") for c in broker["clients"]]
    return lines


def _render_client(client: dict[str, Any], *, dead_label: str) -> str:
    where = f"{client['host']} pid {client['pid']}" if client["host"] else "(not a podflow id)"
    label = "" if client["alive"] else f"  {dead_label}"
    role = client["role"] or "worker"
    return f"    {role:<9} {where:<32} seen {duration(client['last_seen_s'])} ago{label}".rstrip()


def _render_store(store: dict[str, Any]) -> list[str]:
    runs = store["runs"]
    lines = ["  runs: " + "  ".join(f"{status} {count}" for status, count in runs.items())]
    age = store["oldest_pending_age_s"]
    if age is None:
        lines.append("  oldest PENDING: none")
    else:
        lines.append(f"  oldest PENDING: {duration(age)} old (created {store['oldest_pending_created_at']})")
    return lines
