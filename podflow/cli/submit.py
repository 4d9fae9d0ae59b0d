"""``podflow submit``: upload documents, submit a run through the API, follow it to its end.

1. Both profiles are looked up first: an unknown one fails before anything is
   uploaded, naming the profiles the API knows.
2. Each FILE goes up as a source (``POST /api/sources``, multipart, its
   content type from its extension); a document stored already is reused.
3. The run is submitted (``POST /api/podcast/generate``) with an
   ``Idempotency-Key``, so a request sent again after a lost answer never
   makes a second run (``--idempotency-key`` lets a script re-run the command
   safely too). A 503 naming a run recorded while the broker was down is no
   failure: the sweep enqueues that run later, and it is followed all the same.
4. The run is followed through its Server-Sent Events, with a progress bar
   on stderr, reconnecting (and reading the run) when the stream drops.
5. The outcome goes to stdout: the run id, its status, and on SUCCESS the
   audio's URL and, when this host sees the API's data directory, its path.

Exit codes: 0 SUCCESS (or submitted, with ``--no-follow``); 1 FAILURE or
REVOKED, or a request the API refused (one line naming the field); 69 the API
cannot be reached; 64 a FILE cannot be read; 130 Ctrl-C while following (the
run goes on).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import PodflowError
from ..exitcodes import RET_FAILED_RUN, RET_OK, RET_USAGE
from ..lifecycle import result_file
from ..models import PRIORITIES
from ..settings import Settings
from ..timeutil import utcnow
from ._client import ApiClient, ApiError, ApiUnreachable, Submitted, follow_run
from ._common import api_address, duration, print_json, store_for
from ._progress import ProgressDisplay

__all__ = ["parse_start_at", "register", "run"]

#: the exit code after Ctrl-C (128 + SIGINT), as shells report it
RET_INTERRUPTED = 130


def _api_url(value: str) -> str:
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "submit", help="upload documents, submit a run through the API, follow it and print the audio's path"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="source documents (.txt, .md, .html)")
    parser.add_argument("--episode-profile", required=True, metavar="P", help="episode profile (e.g. tech_news)")
    parser.add_argument("--speaker-profile", required=True, metavar="S", help="speaker profile (e.g. dual_host)")
    parser.add_argument("--name", required=True, help="the episode's name")
    parser.add_argument("--briefing", metavar="TEXT", help="added to the episode profile's briefing")
    parser.add_argument("--callback-url", metavar="URL",
                        help="where to POST the run's completion webhook (default: PODFLOW_WEBHOOK_URL)")  # fmt: skip
    parser.add_argument("--api", type=_api_url, metavar="URL",
                        help="the API (default: http://PODFLOW_API_HOST:PODFLOW_API_PORT/)")  # fmt: skip
    parser.add_argument("--token", help="the API's bearer token (default: PODFLOW_API_TOKEN)")
    parser.add_argument("--idempotency-key", metavar="KEY",
                        help="the same key again returns the same run, not a new one (default: random)")  # fmt: skip
    parser.add_argument("--no-follow", action="store_true", help="print the run id and return once submitted")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--priority", choices=PRIORITIES, default=None,
                        help="the run's band: queued high runs start before normal ones, normal before low "
                             "(default: normal)")  # fmt: skip
    parser.add_argument("--start-at", type=_start_at, metavar="TIME",
                        help="start no earlier than this ISO 8601 time with a zone (e.g. 2026-05-01T06:00:00+02:00); "
                             "the run stays PENDING, scheduled, until then")  # fmt: skip
    parser.set_defaults(handler=run)


def _start_at(value: str) -> str:
    return parse_start_at(value, now=utcnow())


def parse_start_at(value: str, *, now: datetime) -> str:
    """``--start-at``: an ISO 8601 time with a zone, after ``now`` (the API checks
    it again on its own clock, and how far ahead it may be).

    Raises:
      argparse.ArgumentTypeError: not such a time (argparse names the option).
    """
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time, e.g. 2026-05-01T06:00:00+02:00") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("must name its zone (an offset such as +02:00, or Z)")
    if when <= now:
        raise argparse.ArgumentTypeError(f"must be in the future (it is {now.isoformat(timespec='seconds')} now)")
    return when.isoformat()


@dataclass
class _Outcome:
    """What the command prints at the end."""

    submitted: Submitted
    source_ids: list[str]
    run: dict[str, Any] | None = None
    audio_path: Path | None = None
    audio_url: str | None = None

    @property
    def status(self) -> str:
        return str(self.run["status"]) if self.run else self.submitted.status

    def as_dict(self) -> dict[str, Any]:
        error = self.run.get("error") if self.run else None
        return {
            "run_id": self.submitted.run_id,
            "status": self.status,
            "source_ids": self.source_ids,
            "enqueued": self.submitted.enqueued,
            "audio_path": str(self.audio_path) if self.audio_path else None,
            "audio_url": self.audio_url,
            "error": error,
            "submitted": self.submitted.body,
            "run": self.run,
        }

    def render(self) -> str:
        error = self.run.get("error") if self.run else None
        result = (self.run or {}).get("result") or {}
        fields: list[tuple[str, Any]] = [
            ("run_id", self.submitted.run_id),
            ("status", self.status),
            ("error", error and f"{error['type']}: {error['message']}"),
            ("audio", self.audio_path),
            ("audio_url", self.audio_url),
            ("duration", result.get("duration_s") and duration(result["duration_s"])),
        ]
        shown = [(name, value) for name, value in fields if value not in (None, "")]
        width = max(len(name) for name, _ in shown)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in shown)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from . import fail

    documents: list[tuple[Path, bytes]] = []
    for path in args.files:
        try:
            documents.append((path, path.read_bytes()))
        except OSError as exc:
            return fail(f"cannot read {path}: {exc.strerror or exc}", RET_USAGE)
    token = settings.auth_token if args.token is None else args.token
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request is noise here
    with ApiClient(args.api or api_address(settings), token=token) as client:
        try:
            client.check_profiles(args.episode_profile, args.speaker_profile)  # before uploading anything
            # the same text twice is one source, and a run names each source once
            source_ids = list(dict.fromkeys(_upload(client, path, content) for path, content in documents))
            submitted = client.submit(_request(args, source_ids), idempotency_key=args.idempotency_key or _key())
            _tell_submitted(submitted)
            outcome = _Outcome(submitted, source_ids)
            if not args.no_follow:
                try:
                    _follow(client, outcome, settings)
                except KeyboardInterrupt:
                    print(f"podflow: stopped following; {submitted.run_id} goes on. "
                          f"Follow it with: podflow runs show {submitted.run_id}", file=sys.stderr)  # fmt: skip
                    return RET_INTERRUPTED
        except ApiError as exc:
            return fail(str(exc), exc.exit_code)
    if args.json:
        print_json(outcome.as_dict())
    else:
        print(outcome.render())
    if args.no_follow:
        print(f"podflow: follow it with: podflow runs show {submitted.run_id}", file=sys.stderr)
        return RET_OK
    return RET_OK if outcome.status == "SUCCESS" else RET_FAILED_RUN


def _key() -> str:
    return "podflow-submit-" + secrets.token_hex(16)


def _request(args: argparse.Namespace, source_ids: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "episode_profile": args.episode_profile,
        "speaker_profile": args.speaker_profile,
        "episode_name": args.name,
        "source_ids": source_ids,
    }
    if args.briefing is not None:
        body["briefing_suffix"] = args.briefing
    if args.priority is not None:
        body["priority"] = args.priority
    if args.start_at is not None:
        body["start_at"] = args.start_at
    if args.callback_url is not None:
        body["callback_url"] = args.callback_url
    return body


def _upload(client: ApiClient, path: Path, content: bytes) -> str:
    try:
        source = client.upload(path, content)
    except ApiUnreachable:
        raise
    except ApiError as exc:
        raise ApiError(f"{path}: {exc}", exit_code=exc.exit_code, status=exc.status, code=exc.code) from None
    how = "uploaded" if source.get("created") else "already stored"
    print(f"podflow: {path}: {how} as {source['source_id']} ({source.get('title')!r})", file=sys.stderr)
    return str(source["source_id"])


def _tell_submitted(submitted: Submitted) -> None:
    if not submitted.enqueued:
        print(f"podflow: {submitted.note}", file=sys.stderr)
    elif submitted.replayed:
        print(f"podflow: this Idempotency-Key was used already: run {submitted.run_id} ({submitted.status})",
              file=sys.stderr)  # fmt: skip
    else:
        when = submitted.body.get("start_at")
        print(f"podflow: submitted run {submitted.run_id}" + (f", scheduled for {when}" if when else ""),
              file=sys.stderr)  # fmt: skip


def _follow(client: ApiClient, outcome: _Outcome, settings: Settings) -> None:
    """Follow the run to its end, then read it whole."""
    run_id = outcome.submitted.run_id
    display = ProgressDisplay(sys.stderr)
    try:
        follow_run(client, run_id, display.update)
    finally:
        display.close()
    outcome.run = client.get_run(run_id)
    audio = ((outcome.run.get("result") or {}).get("audio_url")) if outcome.status == "SUCCESS" else None
    if audio:
        outcome.audio_url = client.url(audio)
        outcome.audio_path = _local_audio(settings, run_id)
    print(f"podflow: {run_id} {outcome.status} after {display.elapsed()}", file=sys.stderr)


def _local_audio(settings: Settings, run_id: str) -> Path | None:
    """The audio's absolute path, when this host holds the run's files.

    The API shows URLs, never places on disk; the path is read from the store
    when the configured one is the SQLite file under PODFLOW_DATA_DIR and knows
    the run (it is then the API's store, on this host). Anything else (a
    MongoDB store, another host's API, the file missing): None.
    """
    if settings.store_kind != "sqlite" or not settings.sqlite_path.is_file():
        return None
    try:
        with store_for(settings) as store:
            found = store.get_run(run_id)
        return None if found is None else result_file(found, "audio", data_dir=settings.data_dir)
    except PodflowError:
        return None
