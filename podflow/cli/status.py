"""``podflow status``: queues, workers and runs at a glance (what ``celery inspect`` and Flower gave).

Reads the broker (:func:`podflow.monitoring.snapshot.inspect_broker`, and the
workers' presence records, :func:`podflow.monitoring.workers.inspect_workers`) and
the store (:func:`podflow.monitoring.snapshot.inspect_store`); prints what it could
read, and exits 69 (RET_UNAVAILABLE) naming whichever could not be reached.
``--watch N`` redraws it every N seconds until Ctrl-C (exit 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..checkpoints import disk_usage
from ..errors import BrokerUnavailable, StoreError
from ..exitcodes import RET_OK, RET_UNAVAILABLE
from ..monitoring.snapshot import foreign_stores, inspect_broker, inspect_store
from ..monitoring.workers import inspect_workers
from ..settings import Settings
from ..timeutil import utcnow
from ..worker.bands import band_queues
from ..worker.broker import build_broker
from ..worker.presence import PRESENCE_TTL_S
from ._common import duration, print_json, redact, store_for, table

__all__ = ["collect", "register", "render", "run"]

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="queues, workers and runs at a glance")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    parser.add_argument("--watch", type=_seconds, metavar="N", help="redraw every N seconds until Ctrl-C")
    parser.add_argument("--times", type=int, metavar="K", help=argparse.SUPPRESS)  # tests: stop after K draws
    parser.set_defaults(handler=run)


def _seconds(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def collect(settings: Settings, *, now: datetime) -> dict[str, Any]:
    """The status as a JSON-ready dict; a part that could not be read has an ``error``.

    Each worker names the store it works for (``store_id``); ``broker.foreign_stores``
    lists the other stores whose live workers consume this deployment's queue."""
    report: dict[str, Any] = {"at": now.isoformat(), "mode": settings.mode}
    location = redact(settings.store_location)
    store: dict[str, Any] = {"kind": settings.store_kind, "location": location, "store_id": None}
    try:
        with store_for(settings) as opened:
            store["store_id"] = opened.store_id
            store.update(inspect_store(opened, now=now).as_dict())
    except StoreError as exc:
        store["error"] = str(exc)
    report["broker"] = None if settings.mode == "thread" else _broker_part(settings, now, store["store_id"])
    report["store"] = store
    report["checkpoints"] = disk_usage(settings.data_dir).as_dict()
    return report


def _broker_part(settings: Settings, now: datetime, store_id: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"url": redact(settings.broker_url), "queue": settings.queue_name}
    broker = build_broker(settings, role="cli")
    try:
        status = inspect_broker(broker, now=now, queues=tuple(band_queues(settings.queue_name).values()))
        part.update(status.as_dict())
        details = inspect_workers(broker, now=now, heartbeats=status.workers or (), queue=settings.queue_name)
        part["worker_details"] = None if details is None else [d.model_dump(mode="json") for d in details]
        if store_id is not None:
            part["foreign_stores"] = foreign_stores(status.workers, store_id=store_id, queue=settings.queue_name)
    except BrokerUnavailable as exc:
        part["error"] = str(exc)
    finally:
        broker.close()
    return part


#: clears a terminal and puts the cursor home, before each redraw of ``--watch``
_CLEAR = "\x1b[H\x1b[2J"


def run(args: argparse.Namespace, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> int:
    if args.watch is None:
        return _once(args, settings)
    draws = 0
    try:
        while args.times is None or draws < args.times:
            if draws:
                sleep(args.watch)
            if sys.stdout.isatty():
                print(_CLEAR, end="")
            else:
                print(f"-- {utcnow().isoformat(timespec='seconds')} (every {args.watch:g} s; Ctrl-C stops) --")
            _once(args, settings)
            sys.stdout.flush()
            draws += 1
    except KeyboardInterrupt:
        pass
    return RET_OK


def _once(args: argparse.Namespace, settings: Settings) -> int:
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
        lines.append(f"broker  {kind + ' ' if kind else ''}{broker['url']} (queue {broker['queue']})")
        if "error" in broker:
            lines.append(f"  UNAVAILABLE: {broker['error']}")
        else:
            lines += _render_broker(broker, ours=report["store"]["store_id"])
    store = report["store"]
    named = f" (id {store['store_id']})" if store["store_id"] else ""
    lines.append(f"store   {store['kind']} {store['location']}{named}")
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


def _render_broker(broker: dict[str, Any], *, ours: str | None) -> list[str]:
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
    lines += [_render_client(w, dead_label="DEAD", ours=ours) for w in workers]
    lines += _render_details(broker.get("worker_details"))
    foreign = broker.get("foreign_stores") or []
    if foreign:
        lines.append(
            f"  MIXED: workers of {len(foreign)} other store(s) ({', '.join(foreign)}) consume queue "
            f"{broker['queue']!r}: two deployments share it and put each other's runs back; "
            "give each its own PODFLOW_QUEUE"
        )
    if broker["clients"]:
        lines.append("  other broker clients (senders):")
        lines += [_render_client(c, dead_label="", ours=ours) for c in broker["clients"]]
    return lines


def _render_details(details: list[dict[str, Any]] | None) -> list[str]:
    """Each worker command, as ``celery inspect stats`` showed a node."""
    if not details:
        return []
    lines = [f"  worker commands (from their presence records; gone {PRESENCE_TTL_S:g} s after the last):"]
    for d in details:
        size = f"{d['processes']}/{d['processes_configured']} processes x {d['threads']} threads"
        store = f"  store {d['store_id']}" if d.get("store_id") else ""
        lines.append(
            f"    {d['host']} pid {d['pid']}: {size}, running {len(d['running'])}, done {d['done']},"
            f" failed {d['failed']}, seen {duration(d['last_seen_s'])} ago{store}"
        )
        if d["running"]:  # the runs it holds now, as `celery inspect active` listed tasks
            lines.append(f"      holds {', '.join(d['running'])}")
    return lines


def _render_client(client: dict[str, Any], *, dead_label: str, ours: str | None) -> str:
    where = f"{client['host']} pid {client['pid']}" if client["host"] else "(not a podflow id)"
    label = "" if client["alive"] else f"  {dead_label}"
    role = client["role"] or "worker"
    store = client.get("store_id")
    if store:
        where += f" store {store}" + (" (ANOTHER STORE)" if ours and store != ours else "")
    return f"    {role:<9} {where:<32} seen {duration(client['last_seen_s'])} ago{label}".rstrip()


def _render_store(store: dict[str, Any]) -> list[str]:
    runs = store["runs"]
    lines = ["  runs: " + "  ".join(f"{status} {count}" for status, count in runs.items())]
    age = store["oldest_pending_age_s"]
    if age is None:
        lines.append("  oldest PENDING: none")
    else:
        lines.append(f"  oldest PENDING: waiting {duration(age)} (due since {store['oldest_pending_due_at']})")
    return lines
