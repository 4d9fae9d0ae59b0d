"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a live stack.

The stack is the API on uvicorn with a real execution path: queue mode on the
private redis-server with an in-process Dramatiq worker, or thread mode. The
browser is /usr/bin/chromium (``make test`` installs it; Playwright never
downloads one), launched once for the module. Tests save screenshots under
tests/artifacts/: ``dashboard.png`` (the list) and ``dashboard-run.png`` (a run)
are the README's, copied to docs/.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from playwright import sync_api

from api.app import create_app
from podflow.errors import TransientGenerationError
from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult
from podflow.models import ErrorInfo, RunResult
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from tests import generators
from tests.api.conftest import Api, InProcessWorker, finish_with_files, serve, settings_for, write_wav
from tests.conftest import make_run
from tests.execution import ROOT, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "dashboard-s3cret"
#: how long the page may take to show a change (it polls every 2 s)
SEEN_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for every test of the module (a fresh context per test)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is absent: `make test` installs Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (its own storage)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(SEEN_MS)
    try:
        yield page
    finally:
        context.close()


def seed_history(store: Store, *, minutes: int = 55, seed: int = 8) -> None:
    """Runs finished over the last hour, as a chart to look at."""
    rng = random.Random(seed)
    now = utcnow()
    for ago in range(minutes, 0, -1):
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            ended = now - timedelta(minutes=ago, seconds=rng.randint(0, 50))
            run, _ = store.create_run(make_run(ended - timedelta(seconds=200), episode_name=f"Archive {ago}"))
            attempt = store.claim(run.run_id, now=ended - timedelta(seconds=rng.randint(30, 180)))
            assert attempt is not None
            if rng.random() < 0.15:
                store.finish(
                    run.run_id,
                    attempt,
                    status=RunStatus.FAILURE,
                    now=ended,
                    error=ErrorInfo(type="TransientGenerationError", message="the TTS provider timed out"),
                )
            elif rng.random() < 0.08:
                store.cancel(run.run_id, now=ended)
            else:
                store.finish(run.run_id, attempt, status=RunStatus.SUCCESS, now=ended, result=RunResult(duration_s=90))


def row(page: Any, run_id: str) -> Any:
    return page.locator(f'tr[data-run-id="{run_id}"]')


def badge(page: Any, run_id: str) -> Any:
    return row(page, run_id).locator(".badge")


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """The visible part of the page (the runs table goes on below), or all of it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def with_audio(api: Api, name: str) -> str:
    """A SUCCESS run with an audio file (made as a draft, then finished as the runner would)."""
    response = api.client.post("/api/podcast/runs", json=api.request(episode_name=name))
    assert response.status_code == 201, response.text
    run_id = str(response.json()["run_id"])
    finish_with_files(api, run_id, audio="")
    return run_id


def test_the_dashboard_follows_runs_live_and_cancels_one_with_its_button(
    page: Any, tmp_path: Path, redis_url: str
) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url, generator="tests.generators:by_name")
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        seed_history(api.store)
        sweep(api.store, now=utcnow(), policy=SweepPolicy.from_settings(settings))  # what the scheduler records
        listened = with_audio(api, "Weekly digest")
        page.goto(f"{api.url}/dashboard")
        page.evaluate("window.podflowTestMarker = 'same page'")  # a reload would lose it
        expect(page.locator("#live")).to_contain_text("live")
        expect(page.locator("#mode")).to_have_text("queue mode")

        queued = api.submit(episode_name="noop")["run_id"]  # no worker yet: it waits
        expect(badge(page, queued)).to_have_text("pending")
        expect(page.locator("#workers")).to_contain_text("no worker is running")
        expect(page.locator("#queues tbody tr").first).to_contain_text("podcast")

        with InProcessWorker(settings, api.store, generators.by_name):
            expect(badge(page, queued)).to_have_text("succeeded")
            expect(page.locator("#workers .alive")).to_have_count(1)

            running = api.submit(episode_name="slow:30")["run_id"]
            expect(badge(page, running)).to_have_text("running")
            expect(row(page, running).locator('[role="progressbar"]')).to_be_visible()
            held = page.locator("#workers a.held")  # the worker names the run it holds, a link to it
            expect(held).to_have_attribute("href", f"#/runs/{running}")
            expect(held).to_have_text(running[:12])
            row(page, running).locator("button.cancel").click()
            expect(page.locator("#confirm-dialog")).to_be_visible()  # cancel asks first
            expect(page.locator("#confirm-title")).to_contain_text("Cancel")
            page.click("#confirm-yes")
            expect(badge(page, running)).to_have_text("cancelled")
            assert api.store.get_run(running).status is RunStatus.REVOKED

            broken = api.submit(episode_name="broken")["run_id"]
            expect(row(page, broken).locator(".outcome")).to_contain_text("ValueError: boom: the generator has a bug")
            row(page, broken).locator("button.retry").click()  # a new run, failing the same way
            expect(page.locator("#runs .episode").filter(has_text=re.compile("^broken$"))).to_have_count(2)
            expect(page.locator("#workers")).to_contain_text("1 \u00d7 2 threads")
            assert any(run.retry_of == broken for run in api.store.list_runs(limit=200).runs)

            api.client.post("/api/podcast/runs", json=api.request(episode_name="Draft, never started"))
            busy = api.submit(episode_name="slow:20")["run_id"]
            expect(row(page, busy).locator(".progress-text")).to_contain_text("speaking")
            audio = row(page, listened).locator("audio")
            expect(audio).to_have_attribute("src", f"/api/podcast/runs/{listened}/audio")  # no token: streamed
            expect(page.locator(".total[data-status=REVOKED] .count")).not_to_have_text("0")
            assert int(page.locator(".total[data-status=SUCCESS] .count").inner_text()) >= 2
            assert page.locator("#chart rect.seg.SUCCESS").count() == 60
            page.evaluate("document.getElementById('toast').hidden = true")
            screenshot(page, "dashboard.png")
            api.client.post(f"/api/podcast/runs/{busy}/cancel")  # so that the worker stops at once

        assert page.evaluate("window.podflowTestMarker") == "same page"


def test_with_a_token_the_dashboard_asks_once_and_never_puts_it_in_a_url(page: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:by_name", api_token=TOKEN)
    expect = sync_api.expect
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    with serve(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        listened = with_audio(api, "Token-protected episode")
        page.goto(f"{api.url}/dashboard")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "wrong")
        page.click("#token-form button[type=submit]")
        expect(page.locator("#token-error")).to_have_text("That token was refused; try again.")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        expect(dialog).to_be_hidden()
        expect(page.locator("#live")).to_contain_text("live")
        expect(page.locator("#broker-note")).to_contain_text("Thread mode")
        assert page.evaluate("sessionStorage.getItem('podflow.apiToken')") == TOKEN

        done = api.submit(episode_name="noop")["run_id"]
        expect(badge(page, done)).to_have_text("succeeded")
        row(page, listened).locator("button.play").click()
        audio = row(page, listened).locator("audio")
        expect(audio).to_have_attribute("src", re.compile(r"^blob:"))
        # the blob is the WAV the API served: once its metadata loaded, it has a duration
        page.wait_for_function(
            "(id) => document.querySelector(`tr[data-run-id='${id}'] audio`).duration > 0", arg=listened
        )

        page.reload()  # the same tab: the token is kept, nothing is asked again
        expect(page.locator("#live")).to_contain_text("live")
        expect(dialog).to_be_hidden()
        screenshot(page, "dashboard-token.png")
    assert urls and not [url for url in urls if TOKEN in url]


# -- issue 16: a run you can open, runs you can find, workers and queues, offline ------------------


def flaky_episode(request: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Attempt 1 fails as a provider timeout (retried); attempt 2 writes a real-looking episode."""
    ctx.progress("outline", 5, "outlining 1 source")
    if ctx.attempt == 1:
        raise TransientGenerationError("the TTS provider timed out")
    work = Path(ctx.work_dir)
    outline = {"episode_name": request.episode_name, "requested_segments": 2, "segments": [
        {"index": 1, "title": "Why runs get lost", "key_points": ["Workers crash mid-run.", "Brokers drop messages."]},
        {"index": 2, "title": "What podflow does", "key_points": ["An outbox before every send.", "A sweep."]},
    ]}  # fmt: skip
    turns = [
        ("Alex", 1, "Welcome back. Today: why long jobs get lost."),
        ("Jordan", 1, "A worker crashes halfway through an hour of speech synthesis."),
        ("Alex", 2, "And podflow records the run before it sends a single message."),
        ("Jordan", 2, "Then a sweep picks up whatever a crash left behind."),
    ]
    transcript = {"episode_name": request.episode_name, "language": "en",
                  "segments": [{"index": s["index"], "title": s["title"]} for s in outline["segments"]],  # type: ignore[index]
                  "turns": [{"index": i, "speaker": who, "part": "segment", "segment": seg, "text": text}
                            for i, (who, seg, text) in enumerate(turns)], "word_count": 42}  # fmt: skip
    (work / "outline.json").write_text(json.dumps(outline), encoding="utf-8")
    (work / "transcript.json").write_text(json.dumps(transcript), encoding="utf-8")
    write_wav(work / "episode.wav", frames=16000)
    ctx.progress("done", 100, "42 words, 1.0 s of audio")
    return GenerationResult(
        outline_path=work / "outline.json",
        transcript_path=work / "transcript.json",
        audio_path=work / "episode.wav",
        duration_s=1.0,
    )


def test_a_run_opens_from_the_list_with_its_timeline_of_two_attempts(page: Any, tmp_path: Path, redis_url: str) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url)
    expect = sync_api.expect
    with serve(create_app(settings)) as api, InProcessWorker(settings, api.store, flaky_episode):
        run_id = api.submit(
            episode_name="Crash safety, explained",
            briefing_suffix="Keep it short.",
            callback_url="http://127.0.0.1:9/hook",
        )["run_id"]
        wait_for(lambda: api.store.get_run(run_id).status == RunStatus.SUCCESS, timeout=20)
        page.goto(f"{api.url}/dashboard")
        row(page, run_id).locator("a.episode").click()
        expect(page).to_have_url(re.compile(f"#/runs/{run_id}$"))  # its own URL
        expect(page.locator("#view-run")).to_be_visible()
        expect(page.locator("#run-title")).to_have_text("Crash safety, explained")
        expect(page.locator("#run-badge")).to_have_text("succeeded")
        steps = page.locator("#timeline .step")
        expect(steps).to_have_count(5)  # created, started #1, released, started #2, succeeded
        expect(steps.nth(2)).to_contain_text("released for retry: TransientGenerationError")
        expect(steps.nth(2)).to_contain_text("attempt 1")
        expect(steps.nth(4)).to_contain_text("attempt 2")
        attempts = page.locator("#attempts tbody tr")
        expect(attempts).to_have_count(2)
        expect(attempts.nth(0)).to_contain_text("released for retry")
        expect(attempts.nth(1)).to_contain_text("SUCCESS")
        expect(page.locator("#run-request")).to_contain_text("Keep it short.")
        # its completion webhook, owed since the run ended (no scheduler here delivers it)
        expect(page.locator("#run-request")).to_contain_text("http://127.0.0.1:9/hook: pending, 0 attempts")
        expect(page.locator("#run-request .sources")).to_contain_text("Long jobs")  # the source's title
        expect(page.locator("#run-times")).to_contain_text("took")
        expect(page.locator("#result-audio audio")).to_have_attribute("src", f"/api/podcast/runs/{run_id}/audio")
        expect(page.locator("#result-transcript .turn")).to_have_count(4)
        expect(page.locator("#result-transcript")).to_contain_text("Jordan: A worker crashes halfway")
        expect(page.locator("#result-outline")).to_contain_text("What podflow does")
        page.evaluate("document.getElementById('toast').hidden = true")
        screenshot(page, "dashboard-run.png", full_page=True)
        page.reload()  # the URL is the run's: a reload shows it again
        expect(page.locator("#run-title")).to_have_text("Crash safety, explained")
        page.click("#back")
        expect(page.locator("#view-list")).to_be_visible()


def test_search_finds_a_run_by_name_and_paging_reaches_the_120th_run(page: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        now = utcnow()
        ids = [api.store.create_run(make_run(now - timedelta(seconds=300 - i), episode_name=f"Episode {i + 1:03}"))[0]
               .run_id for i in range(130)]  # fmt: skip
        weekly = api.store.create_run(make_run(now, episode_name="Weekly digest", episode_profile="deep_dive"))[0]
        page.goto(f"{api.url}/dashboard")
        expect(page.locator("#runs tbody tr")).to_have_count(50)
        page.fill("#search", "weekly")
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        expect(row(page, weekly.run_id)).to_be_visible()
        expect(page).to_have_url(re.compile(r"q=weekly"))
        page.fill("#search", "")
        page.select_option("#profile", "deep_dive")
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        page.select_option("#profile", "")
        expect(page.locator("#runs tbody tr")).to_have_count(50)
        # the 120th newest of 131: the third page of 50
        target = ids[130 - 119]
        page.click("#older")
        expect(page.locator("#page")).to_have_text("page 2")
        page.click("#older")
        expect(page.locator("#page")).to_have_text("page 3")
        expect(row(page, target)).to_be_visible()
        expect(page.locator("#runs tbody tr")).to_have_count(31)
        expect(page.locator("#older")).to_be_disabled()
        page.wait_for_timeout(2500)  # a poll later, the page keeps its place
        expect(page.locator("#page")).to_have_text("page 3")
        page.reload()  # and so does a reload: the place is in the URL
        expect(row(page, target)).to_be_visible()
        expect(page.locator(".total[data-status=PENDING] .count")).to_have_text("131")
        page.click("#newer")
        expect(page.locator("#page")).to_have_text("page 2")


def test_a_double_click_on_retry_makes_one_run(page: Any, tmp_path: Path, redis_url: str) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url)  # no worker: the new run waits
    expect = sync_api.expect
    keys: list[str | None] = []
    page.on("request", lambda r: keys.append(r.headers.get("idempotency-key")) if r.url.endswith("/retry") else None)
    with serve(create_app(settings)) as api:
        failed = api.submit(episode_name="Broken episode")["run_id"]
        attempt = api.store.claim(failed, now=utcnow())
        boom = ErrorInfo(type="ValueError", message="boom")
        api.store.finish(failed, attempt, status=RunStatus.FAILURE, now=utcnow(), error=boom)  # type: ignore[arg-type]
        page.goto(f"{api.url}/dashboard")
        button = row(page, failed).locator("button.retry")
        expect(button).to_be_enabled()
        button.dblclick()
        expect(page.locator("#toast")).to_contain_text("retrying Broken episode")
        page.wait_for_timeout(1000)
        retries = [r for r in api.store.list_runs(limit=200).runs if r.retry_of == failed]
        assert len(retries) == 1, retries
        assert len({k for k in keys if k}) == len(keys) and all(k and k.startswith("dashboard-") for k in keys)
        # the new run links back to the one it retries, and that one to its retry
        page.goto(f"{api.url}/dashboard#/runs/{retries[0].run_id}")
        expect(page.locator("#run-links a.retry-of")).to_have_text(failed[:12])
        page.click("#run-links a.retry-of")
        expect(page.locator("#run-links a.retried-as")).to_have_text(retries[0].run_id[:12])


class Restartable:
    """An app served on one port that can be stopped and started again (the API going away)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, timeout=10)
        self._sock = sock

    def stop(self) -> None:
        self._server.should_exit = True
        assert self._thread is not None
        self._thread.join(10)
        self._sock.close()


def test_when_the_api_stops_the_page_greys_and_disables_its_buttons_then_comes_back(page: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    served = Restartable(create_app(settings))
    served.start()
    try:
        store = served.app.state.podflow.store
        failed = store.create_run(make_run(utcnow(), episode_name="Waiting for a retry"))[0].run_id
        store.cancel(failed, now=utcnow())
        page.goto(f"{served.url}/dashboard")
        expect(row(page, failed).locator("button.retry")).to_be_enabled()
        expect(page.locator("#offline")).to_be_hidden()
        served.stop()
        expect(page.locator("#offline")).to_be_visible()
        expect(page.locator("#offline")).to_contain_text("The API is not answering")
        expect(page.locator("body")).to_have_class(re.compile("offline"))
        expect(row(page, failed).locator("button.retry")).to_be_disabled()
        expect(page.locator("#live")).to_contain_text("offline")
        assert page.evaluate("getComputedStyle(document.querySelector('#runs')).opacity") != "1"  # greyed
        screenshot(page, "dashboard-offline.png")
        served.start()
        expect(page.locator("#offline")).to_be_hidden()
        expect(row(page, failed).locator("button.retry")).to_be_enabled()
        expect(page.locator("#live")).to_contain_text("live")
    finally:
        served.stop()


def test_a_dead_letter_message_is_requeued_from_the_page(page: Any, tmp_path: Path, redis_url: str) -> None:
    from tests.worker.test_deadletter import dead_letter

    settings = settings_for(tmp_path, broker_url=redis_url)
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        run_id = api.submit(episode_name="Given up on")["run_id"]
        broker = api.app.state.podflow.broker
        consumer = broker.consume("podcast", prefetch=1, timeout=1000)  # the submitted message: take it away
        consumer.ack(next(m for m in consumer if m is not None))
        consumer.close()
        dead = dead_letter(broker, run_id)  # and one Dramatiq gave up on
        page.goto(f"{api.url}/dashboard")
        queue = page.locator('#queues tr[data-queue="podcast"]')
        queue.locator("button.dead-open").click()
        message = page.locator(f'#dead tr[data-message-id="{dead.message_id}"]')
        expect(message).to_contain_text("ValueError: boom")
        expect(message).to_contain_text("pending")  # its run, still waiting
        message.locator("button.requeue").click()
        expect(page.locator("#toast")).to_contain_text(f"requeued {dead.message_id}")
        expect(page.locator("#dead-empty")).to_be_visible()
        expect(queue).to_contain_text("podcast")
        expect(queue.locator("td").nth(0)).to_have_text("1")  # ready again
        assert broker.client.zcard(f"{broker.namespace}:podcast.XQ") == 0


def test_a_scheduled_high_priority_run_shows_its_band_and_its_start(page: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        start_at = utcnow() + timedelta(days=2)
        body = {**api.request(episode_name="Weekly show"), "priority": "high", "start_at": start_at.isoformat()}
        response = api.client.post("/api/podcast/runs", json=body)
        assert response.status_code == 201, response.text
        run_id = response.json()["run_id"]
        page.goto(f"{api.url}/dashboard")
        expect(row(page, run_id).locator(".scheduled")).to_contain_text("scheduled for")
        expect(row(page, run_id).locator(".priority.high")).to_be_visible()
        row(page, run_id).locator("a.episode").click()
        expect(page.locator("#run-times")).to_contain_text("starts")
        expect(page.locator("#run-times")).to_contain_text("priority")


# -- delete from a run's page, the list's filters, elapsed times ---------------------------------


def seed_run(store: Store, name: str, status: RunStatus, *, created: datetime | None = None) -> str:
    """A run made through the store in ``status`` (started 5 s after it was created); a
    STARTED one is released by the app's sweep once its heartbeat is stale, and stays STARTED."""
    created = created or utcnow() - timedelta(seconds=60)
    run_id = store.create_run(make_run(created, episode_name=name))[0].run_id
    if status is RunStatus.REVOKED:
        store.cancel(run_id, now=created + timedelta(seconds=5))
    elif status is not RunStatus.PENDING:
        attempt = store.claim(run_id, now=created + timedelta(seconds=5))
        assert attempt is not None
        if status is RunStatus.SUCCESS:
            store.finish(run_id, attempt, status=status, now=created + timedelta(seconds=30), result=RunResult())
        elif status is RunStatus.FAILURE:
            boom = ErrorInfo(type="ValueError", message="boom")
            store.finish(run_id, attempt, status=status, now=created + timedelta(seconds=30), error=boom)
    return run_id


def fact_of(page: Any, term: str) -> Any:
    """The value of ``term`` in the run page's times."""
    return page.locator(f'#run-times dt:text-is("{term}") + dd')


def minutes_seconds(text: str) -> int:
    """The seconds of a duration the page shows as "N min M s"."""
    found = re.search(r"(\d+) min (\d+) s", text)
    assert found, text
    return int(found[1]) * 60 + int(found[2])


def test_a_run_is_deleted_from_its_page_after_a_confirm_and_a_started_one_is_refused(page: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    deletes: list[str] = []
    page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)
    with serve(create_app(settings)) as api:
        done = with_audio(api, "Weekly digest")
        folder = api.settings.data_dir / "podcasts" / done
        assert (folder / "episode.wav").is_file()
        kept = seed_run(api.store, "Kept episode", RunStatus.FAILURE)
        running = seed_run(api.store, "Running episode", RunStatus.STARTED)
        late = seed_run(api.store, "Starts while asked", RunStatus.PENDING)
        page.goto(f"{api.url}/dashboard")
        expect(row(page, done)).to_be_visible()
        row(page, done).locator("a.episode").click()
        expect(page.locator("#run-badge")).to_have_text("succeeded")
        delete = page.locator("#run-actions button.delete")
        delete.click()
        expect(page.locator("#confirm-dialog")).to_be_visible()  # delete asks first
        expect(page.locator("#confirm-title")).to_contain_text("Delete")
        expect(page.locator("#confirm-title")).to_contain_text("Weekly digest")
        page.click("#confirm-no")  # kept: nothing is sent
        expect(page.locator("#confirm-dialog")).to_be_hidden()
        expect(page.locator("#view-run")).to_be_visible()
        delete.click()
        page.click("#confirm-yes")
        expect(page.locator("#toast")).to_contain_text("deleted Weekly digest")
        expect(page.locator("#view-list")).to_be_visible()  # back to the list, without the run
        expect(page).to_have_url(re.compile(r"/dashboard#/$"))
        expect(row(page, kept)).to_be_visible()
        expect(row(page, done)).to_have_count(0)
        assert deletes == [f"{api.url}/api/podcast/runs/{done}"]  # one DELETE: "Keep it" sent none
        assert api.client.get(f"/api/podcast/runs/{done}").status_code == 404
        assert api.store.get_run(done) is None
        assert not folder.exists()

        # a STARTED run has no delete button, only cancel
        row(page, running).locator("a.episode").click()
        expect(page.locator("#run-badge")).to_have_text("running")
        expect(page.locator("#run-actions button.cancel")).to_be_visible()  # drawn with the delete button, if any
        expect(page.locator("#run-actions button.delete")).to_have_count(0)

        # a run that starts while its delete is being confirmed: the API refuses (409), the page says so
        page.goto(f"{api.url}/dashboard#/runs/{late}")
        expect(page.locator("#run-badge")).to_have_text("pending")
        page.locator("#run-actions button.delete").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        assert api.store.claim(late, now=utcnow()) is not None  # a worker takes it meanwhile
        page.click("#confirm-yes")
        expect(page.locator("#toast")).to_contain_text("delete failed: cannot delete: run is STARTED; cancel it first")
        expect(page).to_have_url(re.compile(f"#/runs/{late}$"))  # the page stays on the run
        expect(page.locator("#run-badge")).to_have_text("running")
        expect(page.locator("#run-actions button.delete")).to_have_count(0)
        expect(page.locator("#run-missing")).to_be_hidden()
        assert api.store.get_run(late).status is RunStatus.STARTED
        page.click("#back")
        expect(badge(page, late)).to_have_text("running")
        assert deletes[1:] == [f"{api.url}/api/podcast/runs/{late}"]


def test_the_status_and_created_filters_show_only_matching_runs_and_all_again_when_cleared(
    page: Any, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    queries: list[dict[str, list[str]]] = []  # of every list request the page sends

    def listed(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path == "/api/podcast/runs":
            queries.append(parse_qs(url.query))

    page.on("request", listed)
    with serve(create_app(settings)) as api:
        old = utcnow() - timedelta(days=3)
        ids = {
            RunStatus.PENDING: [seed_run(api.store, "Waiting", RunStatus.PENDING)],
            RunStatus.STARTED: [seed_run(api.store, "Speaking", RunStatus.STARTED)],
            RunStatus.SUCCESS: [
                seed_run(api.store, "Done", RunStatus.SUCCESS),
                seed_run(api.store, "Done long ago", RunStatus.SUCCESS, created=old),
            ],
            RunStatus.FAILURE: [
                seed_run(api.store, "Broken", RunStatus.FAILURE),
                seed_run(api.store, "Broken long ago", RunStatus.FAILURE, created=old),
            ],
            RunStatus.REVOKED: [seed_run(api.store, "Cancelled", RunStatus.REVOKED)],
        }
        rows = page.locator("#runs tbody tr")
        every = [run_id for group in ids.values() for run_id in group]
        page.goto(f"{api.url}/dashboard")
        expect(rows).to_have_count(len(every))
        expect(page.locator('#filters button[data-status=""]')).to_have_attribute("aria-pressed", "true")

        def shown() -> set[str]:
            return {tr.get_attribute("data-run-id") for tr in rows.all()}

        for status, matching in ids.items():
            button = page.locator(f"#filters button[data-status={status.value}]")
            button.click()
            expect(page).to_have_url(re.compile(f"status={status.value}"))
            expect(rows).to_have_count(len(matching))
            expect(page.locator(f"#runs tbody tr[data-status={status.value}]")).to_have_count(len(matching))
            assert shown() == set(matching)
            expect(button).to_have_attribute("aria-pressed", "true")
            expect(page.locator('#filters button[aria-pressed="true"]')).to_have_count(1)
            assert queries[-1]["status"] == [status.value]  # the API filters, not the page

        # failed, created in the last 24 hours: the one of three days ago is left out
        page.click("#filters button[data-status=FAILURE]")
        page.select_option("#range", "86400")
        expect(page).to_have_url(re.compile(r"status=FAILURE&range=86400"))
        expect(row(page, ids[RunStatus.FAILURE][0])).to_be_visible()
        expect(row(page, ids[RunStatus.FAILURE][1])).to_have_count(0)
        expect(rows).to_have_count(1)
        after = datetime.fromisoformat(queries[-1]["created_after"][0])
        assert abs((utcnow() - timedelta(days=1) - after).total_seconds()) < 60, after
        assert queries[-1]["status"] == ["FAILURE"]
        page.reload()  # the filters are in the URL
        expect(rows).to_have_count(1)
        expect(page.locator("#filters button[data-status=FAILURE]")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#range")).to_have_value("86400")

        page.click('#filters button[data-status=""]')  # every status, still the last 24 hours
        expect(page).not_to_have_url(re.compile("status="))
        expect(rows).to_have_count(len(every) - 2)
        assert ids[RunStatus.SUCCESS][1] not in shown() and ids[RunStatus.FAILURE][1] not in shown()
        assert "status" not in queries[-1]
        page.select_option("#range", "")  # and any time: everything again
        expect(page).to_have_url(re.compile(r"/dashboard#/$"))
        expect(rows).to_have_count(len(every))
        assert shown() == set(every)
        assert "status" not in queries[-1] and "created_after" not in queries[-1]


def test_a_finished_run_shows_how_long_it_took_and_a_started_runs_elapsed_time_advances(
    page: Any, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        now = utcnow()
        # created 100 s before it started, took 125 s, 90 s of audio
        finished = api.store.create_run(make_run(now - timedelta(seconds=400), episode_name="Finished"))[0].run_id
        attempt = api.store.claim(finished, now=now - timedelta(seconds=300))
        assert attempt is not None
        ended = now - timedelta(seconds=175)
        api.store.finish(finished, attempt, status=RunStatus.SUCCESS, now=ended, result=RunResult(duration_s=90))
        # started 65 s ago, still STARTED: the app's sweep finds its heartbeat stale and releases it,
        # but a thread-mode app does not run a queue-mode run, so it stays running (no "took")
        running = api.store.create_run(make_run(now - timedelta(seconds=70), episode_name="Running"))[0].run_id
        assert api.store.claim(running, now=now - timedelta(seconds=65)) is not None
        # attempt 1 stopped with its worker (it gives the attempt back), attempt 2 finished it
        restarted = api.store.create_run(make_run(now - timedelta(seconds=60), episode_name="Restarted"))[0].run_id
        assert api.store.claim(restarted, now=now - timedelta(seconds=50)) == 1
        assert api.store.release(restarted, 1, error=None, now=now - timedelta(seconds=45), counted=False)
        assert api.store.claim(restarted, now=now - timedelta(seconds=44)) == 2
        api.store.finish(restarted, 2, status=RunStatus.SUCCESS, now=now - timedelta(seconds=40), result=RunResult())

        page.goto(f"{api.url}/dashboard")
        clock = row(page, running).locator(".elapsed")
        expect(clock).to_have_text(re.compile(r"^ · \d+ min \d+ s$"))
        first = clock.text_content()
        expect(clock).not_to_have_text(first)  # a poll later, it moved on
        assert minutes_seconds(clock.text_content()) > minutes_seconds(first) >= 65
        expect(row(page, finished).locator(".elapsed")).to_have_text("")  # no clock for an ended run
        expect(row(page, finished).locator(".outcome")).to_contain_text("1 min 30 s of audio")

        row(page, finished).locator("a.episode").click()
        expect(page.locator("#run-title")).to_have_text("Finished")
        expect(fact_of(page, "took")).to_have_text("2 min 5 s")
        expect(fact_of(page, "waited")).to_have_text("1 min 40 s")
        expect(fact_of(page, "attempt")).to_have_text("1")  # every attempt counted: no note
        expect(page.locator("#attempts tbody tr").nth(0).locator("td").nth(3)).to_have_text("2 min 5 s")
        expect(fact_of(page, "running for")).to_have_count(0)
        updated = page.locator("#live").text_content()
        expect(page.locator("#live")).not_to_have_text(updated)  # the page refreshed since: it still took 125 s
        expect(fact_of(page, "took")).to_have_text("2 min 5 s")

        page.goto(f"{api.url}/dashboard#/runs/{restarted}")
        expect(page.locator("#run-title")).to_have_text("Restarted")
        expect(fact_of(page, "attempt")).to_have_text("2 (1 counted)")

        page.goto(f"{api.url}/dashboard#/runs/{running}")
        expect(page.locator("#run-badge")).to_have_text("running")
        running_for = fact_of(page, "running for")
        expect(running_for).to_have_text(re.compile(r"^\d+ min \d+ s$"))
        before = running_for.text_content()
        expect(running_for).not_to_have_text(before)
        assert minutes_seconds(running_for.text_content()) > minutes_seconds(before)
        expect(fact_of(page, "took")).to_have_count(0)


def test_a_duration_is_rounded_to_the_second_before_it_is_split_into_minutes(page: Any, tmp_path: Path) -> None:
    """119.6 s is "2 min 0 s" (it once read "1 min 60 s"), 59.7 s of audio "1 min 0 s"."""
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    expect = sync_api.expect
    with serve(create_app(settings)) as api:
        now = utcnow()
        made, _ = api.store.create_run(make_run(now - timedelta(seconds=300), episode_name="Nearly two minutes"))
        attempt = api.store.claim(made.run_id, now=now - timedelta(seconds=200))
        assert attempt is not None
        ended = now - timedelta(seconds=200 - 119.6)
        result = RunResult(duration_s=59.7)
        api.store.finish(made.run_id, attempt, status=RunStatus.SUCCESS, now=ended, result=result)
        page.goto(f"{api.url}/dashboard")
        expect(row(page, made.run_id).locator(".outcome")).to_contain_text("1 min 0 s of audio")
        page.goto(f"{api.url}/dashboard#/runs/{made.run_id}")
        expect(page.locator("#run-badge")).to_have_text("succeeded")
        expect(fact_of(page, "took")).to_have_text("2 min 0 s")
