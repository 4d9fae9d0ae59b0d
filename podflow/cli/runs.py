"""``podflow runs list|show|cancel|retry``: the operator's view of runs, straight from the store.

It talks to the store (and, to retry, the broker) through :mod:`podflow.lifecycle`,
so it works while the API is down. A run that
does not exist, or whose state forbids the change, exits 1 with one line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound, RunNotFound
from ..exitcodes import RET_FAILED_RUN, RET_OK, RET_UNAVAILABLE
from ..lifecycle import cancel, retry
from ..models import Run
from ..settings import Settings
from ..states import RunStatus
from ..timeutil import utcnow
from ._common import dispatcher_for, duration, print_json, store_for, table

__all__ = ["register"]

#: the most runs one ``list`` prints
MAX_LIMIT = 1000


def _limit(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return number


def _status(value: str) -> RunStatus:
    try:
        return RunStatus(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(RunStatus)}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="list, show, cancel or retry runs (straight from the store)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="runs, newest first")
    listing.add_argument("--status", type=_status, help="only runs in this status (PENDING, STARTED, ...)")
    listing.add_argument("--limit", type=_limit, default=20, help=f"at most this many (default 20, max {MAX_LIMIT})")
    listing.add_argument("--cursor", help="continue after a previous page (its next_cursor)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_runs)

    show = actions.add_parser("show", help="one run with its history")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=show_run)

    stop = actions.add_parser("cancel", help="cancel a PENDING or STARTED run (REVOKED)")
    stop.add_argument("run_id")
    stop.set_defaults(handler=cancel_run)

    again = actions.add_parser("retry", help="submit a FAILURE or REVOKED run again, as a new run")
    again.add_argument("run_id")
    again.set_defaults(handler=retry_run)


def _refused(exc: Exception) -> int:
    print(f"podflow: {exc}", file=sys.stderr)
    return RET_FAILED_RUN


def _detail(run: Run) -> str:
    if run.error is not None:
        return f"{run.error.type}: {run.error.message}"
    if run.status is RunStatus.PENDING and run.enqueue_error:
        return f"not enqueued: {run.enqueue_error}"
    if run.status is RunStatus.STARTED and run.progress is not None:
        return f"{run.progress.stage} {run.progress.percent:.0f}%"
    if run.result is not None and run.result.audio_path:
        return run.result.audio_path
    return ""


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_for(settings) as store:
            page = store.list_runs(status=args.status, limit=args.limit, cursor=args.cursor)
    except InvalidInput as exc:
        return _refused(exc)
    if args.json:
        print_json({"runs": [r.model_dump(mode="json") for r in page.runs], "next_cursor": page.next_cursor})
        return RET_OK
    now = utcnow()
    rows = [
        [r.run_id, r.status, r.attempt, duration((now - r.created_at).total_seconds()), r.episode_name[:40],
         _detail(r)[:60]]
        for r in page.runs
    ]  # fmt: skip
    print(table(["run_id", "status", "attempt", "age", "episode", "detail"], rows))
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})")
    return RET_OK


def show_run(args: argparse.Namespace, settings: Settings) -> int:
    with store_for(settings) as store:
        run = store.get_run(args.run_id)
    if run is None:
        return _refused(RunNotFound(args.run_id))
    if args.json:
        print_json(run.model_dump(mode="json"))
        return RET_OK
    print(render_run(run))
    return RET_OK


def render_run(run: Run) -> str:
    """A run as ``field: value`` lines, then its history."""
    fields: list[tuple[str, Any]] = [
        ("run_id", run.run_id),
        ("status", run.status),
        ("episode", f"{run.episode_name} ({run.episode_profile} / {run.speaker_profile})"),
        ("sources", ", ".join(run.source_ids)),
        ("mode", run.mode),
        ("attempt", run.attempt),
        ("created", run.created_at),
        ("started", run.started_at),
        ("heartbeat", run.heartbeat_at),
        ("finished", run.finished_at),
        ("message_id", run.message_id),
        ("enqueued", run.enqueued_at),
        ("outbox", run.outbox_at),
        ("enqueue_error", run.enqueue_error),
        ("progress", run.progress and f"{run.progress.stage} {run.progress.percent:.0f}% {run.progress.message}"),
        ("error", run.error and f"{run.error.type}: {run.error.message}"),
        ("audio", run.result and run.result.audio_path),
        ("transcript", run.result and run.result.transcript_path),
        ("outline", run.result and run.result.outline_path),
        ("retry_of", run.retry_of),
    ]
    shown = [(name, value) for name, value in fields if value not in (None, "")]
    width = max(len(name) for name, _ in shown)
    lines = [f"{name:<{width}}  {value.isoformat() if isinstance(value, datetime) else value}" for name, value in shown]
    lines.append("history:")
    rows = [[h.at.isoformat(), h.status, h.attempt, h.reason] for h in run.history]
    lines.append(table(["at", "status", "attempt", "reason"], rows, indent="  "))
    return "\n".join(lines)


def cancel_run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_for(settings) as store:
            run = cancel(store, args.run_id, now=utcnow(), reason="cancelled by podflow runs cancel")
    except (NotFound, Conflict) as exc:
        return _refused(exc)
    print(f"{run.run_id}: {run.status}")
    return RET_OK


def retry_run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_for(settings) as store, dispatcher_for(settings) as dispatcher:
            submission = retry(store, dispatcher, args.run_id, now=utcnow())
    except (NotFound, Conflict, InvalidInput) as exc:
        return _refused(exc)
    run = submission.run
    print(f"{run.run_id}: {run.status} (retry of {args.run_id})")
    if settings.mode == "thread":
        print("podflow: thread mode: the API process picks it up at its next sweep (PODFLOW_SWEEP_INTERVAL)")
    elif not submission.enqueued:
        print(
            f"podflow: broker unavailable: {run.run_id} is recorded but not enqueued ({submission.error}); "
            "the scheduler's sweep sends it once the broker is back",
            file=sys.stderr,
        )
        return RET_UNAVAILABLE
    return RET_OK
