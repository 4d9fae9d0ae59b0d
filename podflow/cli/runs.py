"""``podflow runs list|show|cancel|retry|delete|wait``: the operator's view of runs, straight from the store.

It talks to the store (and, to retry, the broker) through :mod:`podflow.lifecycle`,
so it works while the API is down. A run that
does not exist, or whose state forbids the change, exits 1 with one line.

``retry`` and ``delete`` also work in bulk, on the runs a filter keeps
(``--status``, ``--since``, ``--before``, ``--error-type``, ``--profile``): they
print how many match, then ask (``--yes`` for scripts; ``--dry-run`` only
counts and lists). A bulk retry gives each run it retries the Idempotency-Key
``podflow-runs-retry:<run_id>``, so running the same command twice retries
each run once. ``wait`` exits by the run's final status: 0 SUCCESS, 1 FAILURE,
3 REVOKED, 75 when ``--timeout`` ran out first.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..deletion import delete_ended
from ..errors import Conflict, InvalidInput, NotFound, RunNotFound
from ..exitcodes import RET_FAILED_RUN, RET_OK, RET_REVOKED, RET_TIMEOUT, RET_UNAVAILABLE
from ..lifecycle import RETRYABLE, cancel, delete, retry
from ..models import Run
from ..settings import Settings
from ..states import TERMINAL, RunStatus
from ..store.base import DEFAULT_BATCH, RunFilter, Store
from ..timeutil import utcnow
from ..views import WebhookView
from ._common import confirm, dispatcher_for, duration, print_json, store_for, table

__all__ = ["register"]

#: the most runs one ``list`` prints
MAX_LIMIT = 1000


def _limit(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return number


def _status(value: str) -> RunStatus:
    """A status in any case (``failure`` is FAILURE)."""
    try:
        return RunStatus(value.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(RunStatus)} (any case)") from None


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _when(value: str, *, now: Callable[[], datetime] = utcnow) -> datetime:
    """A time: ISO 8601 (UTC without an offset), or how long ago (``30m``, ``2h``, ``7d``)."""
    ago = _AGO.match(value.strip())
    if ago:
        return now() - timedelta(seconds=float(ago[1]) * _UNITS[ago[2]])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time (2026-01-31T12:00) or an age (2h, 7d)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _filters(parser: argparse.ArgumentParser, *, since: bool = True) -> None:
    parser.add_argument("--status", type=_status, help="runs in this status (any case: failure, FAILURE)")
    if since:
        parser.add_argument("--since", type=_when, metavar="TIME", help="created at or after (ISO 8601, or 2h ago)")
    parser.add_argument("--before", type=_when, metavar="TIME", help="created before (ISO 8601, or 2h, 7d ago)")
    parser.add_argument("--error-type", metavar="TYPE", help="runs whose error.type is TYPE (time_limit, ...)")
    parser.add_argument("--profile", metavar="P", help="runs of this episode profile")


def _where(args: argparse.Namespace) -> RunFilter:
    return RunFilter(
        status=args.status,
        search=getattr(args, "search", None),
        episode_profile=args.profile,
        error_type=args.error_type,
        created_after=getattr(args, "since", None),
        created_before=args.before,
    )


def _bulk(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in ("status", "since", "before", "error_type", "profile"))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="list, show, cancel or retry runs (straight from the store)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="runs, newest first")
    _filters(listing)
    listing.add_argument("--search", metavar="Q", help="the start of the run id, or of the episode name (any case)")
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

    again = actions.add_parser(
        "retry", help="submit a FAILURE or REVOKED run again, as a new run; or, with filters, every run they keep"
    )
    again.add_argument("run_id", nargs="?", help="the run (or filter: --status FAILURE --since 2h ...)")
    _filters(again)
    _bulk_options(again)
    again.set_defaults(handler=retry_run)

    remove = actions.add_parser("delete", help="delete a run and its files; or, with filters, every run they keep")
    remove.add_argument("run_id", nargs="?", help="the run (or filter: --status FAILURE --before 30d ...)")
    _filters(remove)
    _bulk_options(remove)
    remove.set_defaults(handler=delete_runs)

    wait = actions.add_parser("wait", help="wait for a run to end; exit 0 SUCCESS, 1 FAILURE, 3 REVOKED")
    wait.add_argument("run_id")
    wait.add_argument("--timeout", type=_positive, metavar="S", help="give up after S seconds (exit 75; it goes on)")
    wait.add_argument("--interval", type=_positive, default=1.0, metavar="S", help="seconds between reads (default 1)")
    wait.set_defaults(handler=wait_run)


def _bulk_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only count and list the runs the filters keep")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _refused(exc: Exception) -> int:
    print(f"podflow: {exc}", file=sys.stderr)
    return RET_FAILED_RUN


def _detail(run: Run) -> str:
    detail = _status_detail(run)
    return detail if run.priority == "normal" else f"[{run.priority}] {detail}".rstrip()


def _status_detail(run: Run) -> str:
    if run.status is RunStatus.STARTED:
        if run.released and run.history:  # why no attempt holds it: a retry, a stopped worker, a lost one
            return run.history[-1].reason
        if run.progress is not None:
            return f"{run.progress.stage} {run.progress.percent:.0f}%"
        return ""  # an earlier attempt's error is no detail of the one running now
    if run.error is not None:
        return f"{run.error.type}: {run.error.message}"
    if run.status is RunStatus.PENDING and run.enqueue_error:
        return f"not enqueued: {run.enqueue_error}"
    if run.status is RunStatus.PENDING and run.start_at is not None:
        return f"scheduled for {run.start_at.isoformat()}"
    if run.result is not None and run.result.audio_path:
        return run.result.audio_path
    return ""


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_for(settings) as store:
            page = store.list_runs(limit=args.limit, cursor=args.cursor, where=_where(args))
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


def _webhook_line(run: Run) -> str | None:
    """The completion webhook's delivery on one line: ``<url>: <state>, <n> attempts, ...``."""
    hook = WebhookView.of(run)
    if hook is None:
        return None
    parts = [f"{hook.url}: {hook.state}", f"{hook.attempts} attempt{'s' if hook.attempts != 1 else ''}"]
    if hook.last_status is not None or hook.last_error:
        parts.append(f"last {' '.join(str(x) for x in (hook.last_status, hook.last_error) if x is not None)}")
    if hook.delivered_at is not None:
        parts.append(f"delivered {hook.delivered_at.isoformat()}")
    elif hook.next_attempt_at is not None:
        parts.append(f"next {hook.next_attempt_at.isoformat()}")
    return ", ".join(parts)


def render_run(run: Run) -> str:
    """A run as ``field: value`` lines, then its history."""
    fields: list[tuple[str, Any]] = [
        ("run_id", run.run_id),
        ("status", run.status),
        ("episode", f"{run.episode_name} ({run.episode_profile} / {run.speaker_profile})"),
        ("sources", ", ".join(run.source_ids)),
        ("mode", run.mode),
        ("priority", run.priority),
        ("scheduled", run.start_at),
        ("attempt", run.attempt if run.attempts_counted == run.attempt else
                    f"{run.attempt} ({run.attempts_counted} counted toward PODFLOW_MAX_ATTEMPTS)"),
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
        ("webhook", _webhook_line(run)),
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


def _matching(store: Store, where: RunFilter) -> list[Run]:
    """Every run ``where`` keeps, newest first (collected before anything changes)."""
    runs: list[Run] = []
    cursor: str | None = None
    while True:
        page = store.list_runs(limit=200, cursor=cursor, where=where)
        runs += page.runs
        if not (cursor := page.next_cursor):
            return runs


def _count_and_confirm(args: argparse.Namespace, runs: list[Run], verb: str) -> bool:
    """Print how many runs match (and, with --dry-run, which); ask unless --yes. Whether to go on."""
    print(f"{len(runs)} run(s) match", file=sys.stderr)
    if args.dry_run or not runs:
        now = utcnow()
        rows = [[r.run_id, r.status, duration((now - r.created_at).total_seconds()), r.episode_name[:40],
                 _detail(r)[:60]] for r in runs]  # fmt: skip
        if rows:
            print(table(["run_id", "status", "age", "episode", "detail"], rows))
        return False
    return confirm(f"{verb} {len(runs)} run(s)?", assume_yes=args.yes)


def _bulk_retry(args: argparse.Namespace, settings: Settings) -> int:
    if args.status is not None and args.status not in RETRYABLE:
        return _refused(InvalidInput(f"--status {args.status}: only FAILURE or REVOKED runs are retried"))
    where = _where(args)
    with store_for(settings) as store:
        runs = [r for r in _matching(store, where) if r.status in RETRYABLE]
        if not _count_and_confirm(args, runs, "Retry"):
            return RET_OK
        retried = replayed = unsent = refused = 0
        with dispatcher_for(settings) as dispatcher:
            for run in runs:
                try:
                    key = f"podflow-runs-retry:{run.run_id}"
                    submission = retry(
                        store,
                        dispatcher,
                        run.run_id,
                        now=utcnow(),
                        idempotency_key=key,
                        webhooks=settings.webhook_targets,
                    )
                except (NotFound, Conflict, InvalidInput) as exc:
                    print(f"podflow: {run.run_id}: {exc}", file=sys.stderr)
                    refused += 1
                    continue
                if not submission.created:
                    replayed += 1
                    continue
                retried += 1
                unsent += not submission.enqueued
                print(f"{submission.run.run_id}: {submission.run.status} (retry of {run.run_id})")
    unsent_note = f"; {unsent} recorded but not enqueued (the sweep sends them)" if unsent else ""
    print(f"podflow: retried {retried}; {replayed} retried before by this command (skipped); {refused} refused"
          + unsent_note, file=sys.stderr)  # fmt: skip
    return RET_FAILED_RUN if refused else RET_UNAVAILABLE if unsent and settings.mode == "queue" else RET_OK


def retry_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.run_id is None:
        if not _bulk(args):
            return _refused(InvalidInput("give a RUN_ID, or filters such as --status FAILURE --since 2h"))
        return _bulk_retry(args, settings)
    if _bulk(args):
        return _refused(InvalidInput("give a RUN_ID or filters, not both"))
    try:
        with store_for(settings) as store, dispatcher_for(settings) as dispatcher:
            submission = retry(store, dispatcher, args.run_id, now=utcnow(), webhooks=settings.webhook_targets)
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


def delete_runs(args: argparse.Namespace, settings: Settings) -> int:
    if args.run_id is not None:
        if _bulk(args):
            return _refused(InvalidInput("give a RUN_ID or filters, not both"))
        try:
            with store_for(settings) as store:
                delete(store, args.run_id, data_dir=settings.data_dir)
        except (NotFound, Conflict) as exc:
            return _refused(exc)
        print(f"{args.run_id}: deleted")
        return RET_OK
    if args.status is None:
        return _refused(InvalidInput("a bulk delete needs --status (and usually --before 30d)"))
    if args.status is RunStatus.STARTED:
        return _refused(InvalidInput("--status STARTED: running runs are not deleted; cancel them first"))
    with store_for(settings) as store:
        runs = _matching(store, _where(args))
        if not _count_and_confirm(args, runs, "Delete"):
            return RET_OK
        if args.status in TERMINAL:  # ended runs never change: in batches, as the retention sweep does
            ids = [run.run_id for run in runs]
            deleted = sum(
                len(delete_ended(store, ids[start : start + DEFAULT_BATCH], data_dir=settings.data_dir))
                for start in range(0, len(ids), DEFAULT_BATCH)
            )
            refused = 0  # one deleted meanwhile is gone all the same
        else:
            deleted = refused = 0
            for run in runs:
                try:
                    delete(store, run.run_id, data_dir=settings.data_dir)
                    deleted += 1
                except (NotFound, Conflict) as exc:  # started, or deleted, meanwhile
                    print(f"podflow: {run.run_id}: {exc}", file=sys.stderr)
                    refused += 1
    print(f"podflow: deleted {deleted} run(s) and their files" + (f"; {refused} refused" if refused else ""),
          file=sys.stderr)  # fmt: skip
    return RET_FAILED_RUN if refused else RET_OK


#: exit codes of ``runs wait``, by final status
WAIT_EXIT = {RunStatus.SUCCESS: RET_OK, RunStatus.FAILURE: RET_FAILED_RUN, RunStatus.REVOKED: RET_REVOKED}


def wait_run(
    args: argparse.Namespace,
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    deadline = None if args.timeout is None else clock() + args.timeout
    with store_for(settings) as store:
        while True:
            run = store.get_run(args.run_id)
            if run is None:
                return _refused(RunNotFound(args.run_id))
            if run.status in TERMINAL:
                error = f" ({run.error.type}: {run.error.message})" if run.error else ""
                print(f"{run.run_id}: {run.status}{error}")
                return WAIT_EXIT[run.status]
            if deadline is not None and clock() >= deadline:
                print(f"podflow: {run.run_id} is still {run.status} after {args.timeout:g} s; it goes on",
                      file=sys.stderr)  # fmt: skip
                return RET_TIMEOUT
            sleep(args.interval)
