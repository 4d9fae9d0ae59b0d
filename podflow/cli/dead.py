"""``podflow dead list|requeue``: the messages Dramatiq gave up on, straight from the broker.

``list`` shows the dead-letter queue of PODFLOW_QUEUE (``podcast``; ``--priority``
another band's), most recently dead first, with each message's run and that run's status now; ``requeue`` moves messages
back to the queue, their retries reset (:mod:`podflow.worker.deadletter`).
Redis only: on RabbitMQ both exit 69 saying what to use instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import NotFound, NotSupported
from ..exitcodes import RET_CONFIG, RET_FAILED_RUN, RET_OK, RET_UNAVAILABLE
from ..models import PRIORITIES
from ..settings import Settings
from ..timeutil import utcnow
from ..worker.bands import band_queue
from ..worker.broker import build_broker, close_broker
from ..worker.deadletter import MAX_LISTED, list_dead, requeue
from ._common import confirm, duration, print_json, store_for, table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dead", help="list or requeue dead-lettered messages (Redis)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the dead-letter queue, most recently dead first")
    listing.add_argument("--limit", type=int, default=50, help=f"at most this many (default 50, max {MAX_LISTED})")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _band_option(listing)
    listing.set_defaults(handler=list_messages)
    again = actions.add_parser("requeue", help="move dead messages back to the queue, their retries reset")
    again.add_argument("ids", nargs="*", metavar="ID", help="entries or message ids, as `dead list` shows them")
    again.add_argument("--all", action="store_true", help="every dead message of the queue")
    again.add_argument("--yes", action="store_true", help="do not ask for confirmation (with --all)")
    _band_option(again)
    again.set_defaults(handler=requeue_messages)


def _band_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--priority", choices=PRIORITIES, default="normal",
                        help="the band whose dead-letter queue (default: normal, PODFLOW_QUEUE itself)")  # fmt: skip


def _queue(args: argparse.Namespace, settings: Settings) -> str:
    return band_queue(settings.queue_name, args.priority)


def _broker(settings: Settings) -> Any:
    if settings.mode == "thread":
        print("podflow: PODFLOW_MODE=thread has no broker, so no dead-letter queue", file=sys.stderr)
        return None
    return build_broker(settings, role="cli")


def list_messages(args: argparse.Namespace, settings: Settings) -> int:
    queue = _queue(args, settings)
    broker = _broker(settings)
    if broker is None:
        return RET_CONFIG
    try:
        messages, total = list_dead(broker, queue=queue, limit=max(1, min(args.limit, MAX_LISTED)))
    except NotSupported as exc:
        print(f"podflow: {exc}", file=sys.stderr)
        return RET_UNAVAILABLE
    finally:
        close_broker(broker)
    with store_for(settings) as store:
        statuses = {m.run_id: (store.get_run(m.run_id) if m.run_id else None) for m in messages}
    def status(run_id: str | None) -> str | None:
        run = statuses.get(run_id)
        return None if run is None else str(run.status)

    if args.json:
        print_json({"queue": queue, "total": total,
                    "messages": [{**m.as_dict(), "run_status": status(m.run_id)} for m in messages]})  # fmt: skip
        return RET_OK
    now = utcnow()
    rows = [
        [m.id, m.run_id or m.actor, status(m.run_id) or "gone", f"{duration((now - m.dead_at).total_seconds())} ago",
         m.retries, (m.error or "")[:60]]
        for m in messages
    ]  # fmt: skip
    print(f"{queue}: {total} dead-lettered message(s)" + (f", the newest {len(messages)}:" if rows else ""))
    if rows:
        print(table(["id", "run", "run status", "dead", "retries", "error"], rows))
    return RET_OK


def requeue_messages(args: argparse.Namespace, settings: Settings) -> int:
    queue = _queue(args, settings)
    if bool(args.ids) == args.all:
        print("podflow: name the messages to requeue, or pass --all", file=sys.stderr)
        return RET_FAILED_RUN
    broker = _broker(settings)
    if broker is None:
        return RET_CONFIG
    try:
        ids = list(args.ids)
        if args.all:
            messages, total = list_dead(broker, queue=queue, limit=MAX_LISTED)
            ids = [m.id for m in messages]
            if not ids:
                print(f"podflow: no dead-lettered message in {queue}", file=sys.stderr)
                return RET_OK
            if not confirm(f"Requeue {len(ids)} of {total} dead message(s) of {queue}?", assume_yes=args.yes):
                return RET_FAILED_RUN
        missing = 0
        for ident in ids:
            try:
                message = requeue(broker, ident, queue=queue)
            except NotFound as exc:
                print(f"podflow: {exc}", file=sys.stderr)
                missing += 1
            else:
                print(f"requeued {message.id} (run {message.run_id or '-'})")
    except NotSupported as exc:
        print(f"podflow: {exc}", file=sys.stderr)
        return RET_UNAVAILABLE
    finally:
        close_broker(broker)
    return RET_FAILED_RUN if missing else RET_OK
