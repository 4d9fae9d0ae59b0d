"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a live stack.

The stack is the API on uvicorn with a real execution path: queue mode on the
private redis-server with an in-process Dramatiq worker, or thread mode. The
browser is /usr/bin/chromium (``make test`` installs it; Playwright never
downloads one). Each test saves a screenshot under tests/artifacts/.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from api.app import create_app
from podflow.models import ErrorInfo, RunResult
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from tests import generators
from tests.api.conftest import Api, InProcessWorker, finish_with_files, serve, settings_for
from tests.conftest import make_run
from tests.execution import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "dashboard-s3cret"
#: how long the page may take to show a change (it polls every 2 s)
SEEN_MS = 10_000



@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is absent: `make test` installs Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def page(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    """A page in a fresh headless chromium profile."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
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
        viewport={"width": 1360, "height": 900},
    )
    page = context.pages[0] if context.pages else context.new_page()
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


def screenshot(page: Any, name: str) -> Path:
    """The visible part of the page (the runs table goes on below)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
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
        expect(page.locator("#workers")).to_contain_text("no worker has been seen")
        expect(page.locator("#queues tbody tr").first).to_contain_text("podcast")

        with InProcessWorker(settings, api.store, generators.by_name):
            expect(badge(page, queued)).to_have_text("succeeded")
            expect(page.locator("#workers .alive")).to_have_count(1)

            running = api.submit(episode_name="slow:30")["run_id"]
            expect(badge(page, running)).to_have_text("running")
            expect(row(page, running).locator('[role="progressbar"]')).to_be_visible()
            row(page, running).locator("button.cancel").click()
            expect(badge(page, running)).to_have_text("cancelled")
            assert api.store.get_run(running).status is RunStatus.REVOKED

            broken = api.submit(episode_name="broken")["run_id"]
            expect(row(page, broken).locator(".outcome")).to_contain_text("ValueError: boom: the generator has a bug")
            row(page, broken).locator("button.retry").click()  # a new run, failing the same way
            expect(page.locator("#runs .episode").filter(has_text=re.compile("^broken$"))).to_have_count(2)
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
