"""``podflow submit`` against a real app served on a free port, and its pieces on their own.

The end-to-end run through the whole Procfile stack is in ``test_up.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from podflow.cli import main
from podflow.cli._client import ApiClient, ApiUnreachable, follow_run, parse_sse
from podflow.cli._progress import ProgressDisplay
from podflow.cli.submit import parse_start_at
from podflow.exitcodes import RET_FAILED_RUN, RET_OK, RET_UNAVAILABLE, RET_USAGE
from podflow.lifecycle import cancel
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from tests.api.conftest import Api, serve, settings_for
from tests.execution import wait_for
from tests.servers import free_port

NOTES = "# Crash safety\nWorkers crash. Runs survive. The sweep re-sends lost runs.\n"
ARGS = ["--episode-profile", "quick_brief", "--speaker-profile", "solo"]


@pytest.fixture
def served(podflow_env: Callable[..., Path]) -> Iterator[Callable[..., contextlib.AbstractContextManager[Api]]]:
    """``served(**settings)``: the app with these settings on a free port, sharing
    PODFLOW_DATA_DIR with the ``podflow`` command run in-process. Without a
    ``broker_url``, the broker is down."""
    data_dir = podflow_env()

    @contextlib.contextmanager
    def start(**settings: Any) -> Iterator[Api]:
        settings.setdefault("broker_url", f"redis://127.0.0.1:{free_port()}/0")  # never the shared one
        with serve(create_app(settings_for(data_dir, **settings), events_interval_s=0.05)) as api:
            yield api

    yield start


def document(name: str = "notes.md", text: str = NOTES) -> str:
    """A document in the working directory (the test's tmp_path); its name."""
    Path(name).write_text(text, encoding="utf-8")
    return name


def fields(out: str) -> dict[str, str]:
    """``name  value`` lines as a dict."""
    return dict(line.split(None, 1) for line in out.splitlines() if line.strip())  # type: ignore[misc]


def submit(api: Api, *args: str) -> int:
    return main(["submit", "--api", api.url, *args])


# -- following a run to its end ------------------------------------------------------


def test_submit_uploads_submits_follows_and_prints_the_audio_path_and_url(
    served: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with served(mode="thread", concurrency=1) as api:
        files = [document(), document("brief.txt", "Retries back off. Dead workers are noticed."), document()]
        assert submit(api, *ARGS, "--name", "Crash safety", "--briefing", "Keep it short.", *files) == RET_OK
        out, err = capsys.readouterr()
        shown = fields(out)
        run = api.store.get_run(shown["run_id"])
    assert shown["status"] == "SUCCESS" and run is not None and run.status is RunStatus.SUCCESS
    assert run.request.briefing_suffix == "Keep it short." and len(run.request.source_ids) == 2  # notes.md once
    assert "notes.md: uploaded as src_" in err and "notes.md: already stored as src_" in err
    audio = Path(shown["audio"])
    assert audio.is_absolute() and audio == (api.settings.data_dir / run.result.audio_path).resolve()
    assert audio.suffix == ".mp3" and audio.read_bytes()[:3] == b"ID3"  # ffmpeg's MP3
    assert shown["audio_url"] == f"{api.url}/api/podcast/runs/{run.run_id}/audio"
    assert "SUCCESS  " in err and f"{run.run_id} SUCCESS after" in err  # the last progress line, and the end


def test_a_failed_run_exits_1_with_its_error_as_json(
    served: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with served(mode="thread", concurrency=1, generator="tests.generators:by_name") as api:
        assert submit(api, *ARGS, "--name", "broken", "--json", document()) == RET_FAILED_RUN
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["status"] == "FAILURE" and outcome["run"]["status"] == "FAILURE"
    assert outcome["error"] == {"type": "ValueError", "message": "boom: the generator has a bug"}
    assert outcome["audio_path"] is None and outcome["audio_url"] is None and outcome["enqueued"] is True


def test_a_run_recorded_while_the_broker_is_down_is_followed_and_its_cancel_exits_1(
    served: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with served() as api:

        def cancel_it() -> None:  # once the API has recorded that the broker is down
            runs = api.store.list_runs
            run = wait_for(lambda: next((r for r in runs().runs if r.enqueue_error), None), what="the 503")
            cancel(api.store, run.run_id, now=utcnow(), reason="test")

        canceller = threading.Thread(target=cancel_it)
        canceller.start()
        try:
            code = submit(api, *ARGS, "--name", "later", document())
        finally:
            canceller.join(20)
        out, err = capsys.readouterr()
    assert code == RET_FAILED_RUN and fields(out)["status"] == "REVOKED"
    assert "was recorded and will be enqueued when the broker is back" in err


# -- refusals: one line each ------------------------------------------------------------


def test_an_unreachable_api_exits_69_with_one_line(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_API_PORT=str(free_port()))  # the default URL comes from the settings
    assert main(["submit", *ARGS, "--name", "x", document()]) == RET_UNAVAILABLE
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("podflow: cannot reach the API at http://127.0.0.1:") and "is it running?" in err


def test_refused_requests_exit_1_with_the_field_at_fault(
    served: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with served(max_source_bytes=200) as api:
        cases = {
            ("--episode-profile", "nope", "--speaker-profile", "solo", "--name", "x", document()):
                "podflow: --episode-profile: unknown episode profile 'nope'; known: deep_dive, quick_brief,",
            ("--episode-profile", "tech_news", "--speaker-profile", "nobody", "--name", "x", document()):
                "podflow: --speaker-profile: unknown speaker profile 'nobody'; known: dual_host,",
            (*ARGS, "--name", " ", document()): "podflow: episode_name: ",
            (*ARGS, "--name", "x", document("slides.pdf")): "podflow: slides.pdf: filename: cannot tell the type",
            (*ARGS, "--name", "x", document("big.md", "word " * 100)): "podflow: big.md: source too large",
        }  # fmt: skip
        for args, line in cases.items():
            assert submit(api, *args) == RET_FAILED_RUN, line
            err = [e for e in capsys.readouterr().err.splitlines() if " as src_" not in e]  # uploads
            assert len(err) == 1 and err[0].startswith(line) and "(HTTP 4" in err[0], err
            if "profile" in line:  # checked before anything was uploaded
                assert api.store.list_sources() == []
        assert api.store.list_runs().runs == []


def test_a_file_that_cannot_be_read_is_a_usage_error_before_anything_is_sent(
    served: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with served() as api:
        assert submit(api, *ARGS, "--name", "x", document(), "missing.md") == RET_USAGE
        assert api.store.list_sources() == []
    assert capsys.readouterr().err == "podflow: cannot read missing.md: No such file or directory\n"


def test_the_token_comes_from_the_settings_and_a_missing_one_is_refused(
    served: Callable[..., Any], redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(api_token="s3cret", broker_url=redis_url) as api:
        assert submit(api, *ARGS, "--name", "x", "--no-follow", document()) == RET_FAILED_RUN
        err = capsys.readouterr().err
        assert "(HTTP 401 unauthorized)" in err and "with --token or set PODFLOW_API_TOKEN" in err
        monkeypatch.setenv("PODFLOW_API_TOKEN", "s3cret")
        assert submit(api, *ARGS, "--name", "x", "--no-follow", document()) == RET_OK


# -- without following --------------------------------------------------------------------


def test_no_follow_returns_once_submitted_and_one_key_makes_one_run(
    served: Callable[..., Any], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(broker_url=redis_url) as api:  # no worker: the run stays PENDING
        args = [*ARGS, "--name", "x", "--no-follow", "--idempotency-key", "nightly-2026-01-01", document()]
        assert submit(api, *args) == RET_OK
        out, err = capsys.readouterr()
        assert fields(out) == {"run_id": fields(out)["run_id"], "status": "PENDING"}
        assert f"follow it with: podflow runs show {fields(out)['run_id']}" in err
        assert submit(api, *args, "--json") == RET_OK
        again = json.loads(capsys.readouterr().out)
        assert again["run_id"] == fields(out)["run_id"] and again["run"] is None
        assert again["submitted"]["links"]["events"].endswith("/events")
        assert len(api.store.list_runs().runs) == 1


def test_a_callback_url_goes_with_the_run_and_a_bad_one_is_refused_naming_the_field(
    served: Callable[..., Any], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(broker_url=redis_url) as api:
        hook = "https://hooks.example.com/podflow"
        assert submit(api, *ARGS, "--name", "x", "--no-follow", "--callback-url", hook, document()) == RET_OK
        run = api.store.get_run(fields(capsys.readouterr().out)["run_id"])
        assert run is not None and run.callback_url == hook
        assert submit(api, *ARGS, "--name", "x", "--no-follow", "--callback-url", "ftp://h/x", document()) == 1
        assert "callback_url: must be an http:// or https:// URL" in capsys.readouterr().err


def test_a_priority_and_a_start_time_go_with_the_run_which_stays_pending_scheduled(
    served: Callable[..., Any], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start_at = (utcnow() + timedelta(hours=3)).replace(microsecond=0)
    local = start_at.astimezone(timezone(timedelta(hours=2))).isoformat()  # any zone names the same instant
    with served(broker_url=redis_url) as api:
        args = [*ARGS, "--name", "weekly", "--no-follow", "--priority", "high", "--start-at", local, document()]
        assert submit(api, *args) == RET_OK
        out, err = capsys.readouterr()
        run = api.store.get_run(fields(out)["run_id"])
        assert run is not None and fields(out)["status"] == "PENDING"
        assert (run.priority, run.start_at, run.status) == ("high", start_at, RunStatus.PENDING)
        (line,) = [e for e in err.splitlines() if "submitted run" in e]
        assert line.startswith(f"podflow: submitted run {run.run_id}, scheduled for ")
        assert datetime.fromisoformat(line.rsplit(" ", 1)[1].replace("Z", "+00:00")) == start_at
        # without the options: a normal run that starts at once
        assert submit(api, *ARGS, "--name", "now", "--no-follow", document()) == RET_OK
        plain = api.store.get_run(fields(capsys.readouterr().out)["run_id"])
        assert plain is not None and (plain.priority, plain.start_at) == ("normal", None)


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--start-at", "next tuesday", "argument --start-at: must be an ISO 8601 time, e.g. 2026-05-01T06:00:00+02:00"),
        ("--start-at", "2030-01-01T06:00:00", "argument --start-at: must name its zone"),
        ("--start-at", "2020-01-01T06:00:00Z", "argument --start-at: must be in the future (it is 20"),
        ("--priority", "urgent", "argument --priority: invalid choice: 'urgent' (choose from 'high', 'normal', 'low')"),
    ],
    ids=["not a time", "no zone", "past", "unknown band"],
)
def test_a_bad_start_time_or_priority_is_refused_naming_the_option_before_anything_is_sent(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str], option: str, value: str, says: str
) -> None:
    podflow_env()
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing is sent: it would say so
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--api", unreachable, *ARGS, "--name", "x", option, value, document()])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and says in err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("podflow submit: error: argument")


def test_start_at_is_parsed_against_the_time_given() -> None:
    now = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)
    assert parse_start_at("2026-05-01T06:00:01+02:00", now=now) == "2026-05-01T06:00:01+02:00"
    assert parse_start_at("2026-05-01T04:00:01Z", now=now) == "2026-05-01T04:00:01+00:00"
    past = r"must be in the future \(it is 2026-05-01T04:00:00\+00:00 now\)"
    with pytest.raises(argparse.ArgumentTypeError, match=past):
        parse_start_at("2026-05-01T06:00:00+02:00", now=now)  # the same instant is not after it


def test_a_start_time_beyond_the_apis_limit_is_refused_naming_the_field(
    served: Callable[..., Any], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ahead = (utcnow() + timedelta(hours=2)).isoformat()
    with served(broker_url=redis_url, max_schedule_ahead_s=3600) as api:
        assert submit(api, *ARGS, "--name", "x", "--no-follow", "--start-at", ahead, document()) == RET_FAILED_RUN
        err = [e for e in capsys.readouterr().err.splitlines() if " as src_" not in e]
        assert api.store.list_runs().runs == []
    assert len(err) == 1 and err[0].startswith("podflow: start_at: must be at most 3600 s ahead"), err
    assert "PODFLOW_MAX_SCHEDULE_AHEAD" in err[0] and "(HTTP 422" in err[0]


def test_ctrl_c_while_following_exits_130_and_leaves_the_run_running(tmp_path: Path, redis_url: str) -> None:
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url))) as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_"))}
        env["PODFLOW_DATA_DIR"] = str(tmp_path)
        (tmp_path / "notes.md").write_text(NOTES, encoding="utf-8")
        out, err = tmp_path / "stdout", tmp_path / "stderr"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            # the CLI gets SIGINT at its default, as in a terminal's foreground job: a suite run in
            # the background (`.ci/run &`) has it ignored, which a child inherits, and Python then
            # never raises KeyboardInterrupt; a signal handled here is reset to default at exec
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "podflow", "submit", "--api", api.url, *ARGS, "--name", "x", "notes.md"],
                    cwd=tmp_path, env=env, stdout=stdout, stderr=stderr,
                )  # fmt: skip
            finally:
                signal.signal(signal.SIGINT, previous)
        try:
            wait_for(lambda: "waiting for a worker" in err.read_text(), what="the follow")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
        (run,) = api.store.list_runs().runs
        assert run.status is RunStatus.PENDING
    assert out.read_text() == ""
    assert f"stopped following; {run.run_id} goes on. Follow it with: podflow runs show {run.run_id}" in (
        err.read_text()
    )


# -- the pieces: the client, following, the display ---------------------------------------


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return "".join(f"id: {i}\nevent: {e}\ndata: {json.dumps(d)}\n\n" for i, (e, d) in enumerate(events, 1)).encode()


def state(status: str, **more: Any) -> dict[str, Any]:
    return {"run_id": "run_x", "status": status, "attempt": 1, "progress": None, "error": None, **more}


def test_sse_parsing_joins_data_lines_and_skips_comments_and_what_is_not_json() -> None:
    lines = [": keep-alive", "", "id: 1", "event: status", 'data: {"a":', "data: 1}", ""]
    lines += ["data: oops", "", "data: {}", ""]
    events = [(e.event, e.data, e.id) for e in parse_sse(iter(lines))]
    assert events == [("status", {"a": 1}, "1"), ("message", {}, None)]


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def test_following_survives_a_dropped_stream_and_an_api_away_then_ends_at_the_terminal_status() -> None:
    script: list[Callable[[httpx.Request], httpx.Response]] = [
        lambda r: httpx.Response(200, content=sse(("status", state("PENDING")))),  # ends early: a restarted API
        lambda r: httpx.Response(200, json=state("STARTED")),
        lambda r: httpx.Response(503, text="proxy says no"),  # no stream
        refused,  # and no run either
        lambda r: httpx.Response(200, content=sse(("status", state("STARTED")), ("status", state("SUCCESS")))),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path.rsplit("/", 1)[-1])
        return script.pop(0)(request)

    sleeps: list[float] = []
    updates: list[str] = []
    with ApiClient("http://api", transport=httpx.MockTransport(handler), sleep=sleeps.append) as client:
        last = follow_run(client, "run_x", lambda s: updates.append(s["status"]), sleep=sleeps.append)
    assert last["status"] == "SUCCESS" and updates == ["PENDING", "STARTED", "STARTED", "SUCCESS"]
    assert seen == ["events", "run_x", "events", "run_x", "events"] and sleeps == [1.0, 1.0]


def test_following_gives_up_when_the_api_stays_away() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with (
        ApiClient("http://api", transport=httpx.MockTransport(refused)) as client,
        pytest.raises(ApiUnreachable, match="gave up following run_x after 5 s"),
    ):
        follow_run(client, "run_x", print, give_up_after_s=5, sleep=sleep, clock=lambda: now[0])
    assert now[0] == 5


def test_a_submit_whose_answer_was_lost_is_sent_again_with_the_same_key() -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        if len(keys) == 1:
            raise httpx.ReadTimeout("no answer")
        return httpx.Response(200, json={"run_id": "run_x", "status": "PENDING"})

    sleeps: list[float] = []
    with ApiClient("http://api", transport=httpx.MockTransport(handler), sleep=sleeps.append) as client:
        submitted = client.submit({"episode_name": "x"}, idempotency_key="k1")
    assert keys == ["k1", "k1"] and sleeps == [0.5]
    assert submitted.run_id == "run_x" and submitted.replayed and submitted.enqueued


def test_a_terminal_gets_one_bar_redrawn_in_place() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True, columns=100, clock=lambda: 0.0)
    display.update(state("PENDING"))
    display.update(state("STARTED", progress={"stage": "audio", "percent": 50.0, "message": "spoke turn 2 of 4"}))
    display.update(state("SUCCESS", progress={"stage": "done", "percent": 100.0, "message": "33.4 s of audio"}))
    display.close()
    frames = out.getvalue().split("\r")[1:]
    assert frames[1].startswith("STARTED  [##########----------]  50%  audio: spoke turn 2 of 4")
    assert frames[2].startswith("SUCCESS  [####################] 100%  33.4 s of audio") and frames[2].endswith("\n")
    assert out.getvalue().count("\n") == 1


def test_a_log_gets_one_line_per_status_attempt_or_stage_not_per_progress_event() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=False, clock=lambda: 0.0)
    display.update(state("PENDING"))
    for turn in range(1, 4):
        display.update(state("STARTED", progress={"stage": "audio", "percent": 20 + turn, "message": f"turn {turn}"}))
    display.update(state("STARTED", attempt=2, progress={"stage": "audio", "percent": 20, "message": "turn 1"}))
    display.update(state("FAILURE", attempt=2, error={"type": "ValueError", "message": "boom"}))
    assert [line.split(None, 2)[2] for line in out.getvalue().splitlines()] == [
        "PENDING  waiting for a worker",
        "STARTED  attempt 1",
        "audio       21%  turn 1",
        "STARTED  attempt 2",
        "audio       20%  turn 1",
        "FAILURE  ValueError: boom",
    ]
