"""Server-Sent Events: one event per status or progress change, ending after the terminal one."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from api.app import create_app
from api.sse import run_events
from podflow.models import Run
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from tests import generators
from tests.api.conftest import ABSENT, Api, InProcessWorker, error, serve, settings_for
from tests.conftest import make_run
from tests.execution import wait_for

FAST = {"events_interval_s": 0.05}


def read_stream(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The events of an SSE response as dicts (``comment`` for comment lines)."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            key, _, value = line.partition(": ")
            event[key] = json.loads(value) if key == "data" else value
        elif event:
            yield event
            event = {}


def follow(api: Api, run_id: str) -> list[dict[str, Any]]:
    with api.client.stream("GET", f"/api/podcast/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(read_stream(response))


def check_stream(events: list[dict[str, Any]], run_id: str) -> None:
    """Ids count up from 1, the first event is a status, the last the SUCCESS."""
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "status" and all(e["data"]["run_id"] == run_id for e in events)
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "SUCCESS"
    assert any(e["event"] == "progress" for e in events)
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[-2:] == ["STARTED", "SUCCESS"]
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    assert all(p != q for p, q in itertools.pairwise(progress))  # one event per change


@pytest.mark.slow
def test_the_stream_of_a_thread_mode_run_ends_with_its_terminal_status(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:by_name", concurrency=1)
    with serve(create_app(settings, **FAST)) as api:
        run_id = api.submit(episode_name="slow:1")["run_id"]
        check_stream(follow(api, run_id), run_id)
        assert len(follow(api, run_id)) == 1  # a finished run: its status, and the end


@pytest.mark.slow
def test_the_stream_of_a_queue_mode_run_ends_with_its_terminal_status(tmp_path: Path, redis_url: str) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url)
    with serve(create_app(settings, **FAST)) as api, InProcessWorker(settings, api.store, generators.by_name):
        run_id = api.submit(episode_name="slow:1")["run_id"]
        check_stream(follow(api, run_id), run_id)


def test_an_unknown_run_is_a_404_before_any_stream(api: Api) -> None:
    error(api.client.get(f"/api/podcast/runs/{ABSENT}/events"), 404, "not_found")


class CountingStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, heartbeat_timeout_s=60, max_attempts=3)
        self.reads = 0
        self.batches = 0

    def get_run(self, run_id: str) -> Run | None:
        self.reads += 1
        return super().get_run(run_id)

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        self.reads += 1
        self.batches += 1
        return super().get_runs(run_ids)


def test_a_quiet_stream_sends_keep_alives_and_stops_polling_when_the_client_leaves(
    tmp_path: Path, redis_url: str
) -> None:
    store = CountingStore(tmp_path / "podflow.sqlite3")
    app = create_app(settings_for(tmp_path, broker_url=redis_url), store=store, keepalive_s=0.1, **FAST)
    try:
        with serve(app) as api:
            run_id = api.submit()["run_id"]  # no worker: it stays PENDING
            with api.client.stream("GET", f"/api/podcast/runs/{run_id}/events") as response:
                stream = read_stream(response)
                assert next(stream)["data"]["status"] == "PENDING"
                assert next(stream) == {"comment": "keep-alive"}

            def settled() -> bool:  # polling every 0.05 s would read ~6 times meanwhile
                before = store.reads
                time.sleep(0.3)
                return store.reads == before

            wait_for(settled, timeout=5, what="the stream to stop polling after the client left")
    finally:
        store.close()


class Replay:
    """Snapshots from a list, each one at once (a fake :class:`api.watch.Subscription`)."""

    def __init__(self, runs: list[Run | None]) -> None:
        self._runs = iter(runs)
        self.latest = next(self._runs)

    async def wait(self, timeout_s: float) -> bool:
        self.latest = next(self._runs)
        return True


def collect(stream: AsyncIterator[str]) -> list[str]:
    async def gather() -> list[str]:
        return [event async for event in stream]

    return anyio.run(gather)


def test_the_stream_ends_with_an_event_when_the_run_is_deleted() -> None:
    events = collect(run_events(Replay([make_run(), None]), keepalive_s=60))
    assert events[-1] == "id: 2\nevent: deleted\ndata: {}\n\n" and len(events) == 2


def test_a_new_attempt_is_a_status_event_even_with_the_same_status() -> None:
    first = make_run(status=RunStatus.STARTED, attempt=1)
    retried = first.model_copy(update={"attempt": 2})
    runs = [first, first, retried, retried.model_copy(update={"status": RunStatus.FAILURE})]
    events = collect(run_events(Replay(runs), keepalive_s=60))
    assert [e.split("\n")[1] for e in events] == ["event: status"] * 3  # the repeated snapshot: no event


def test_fifty_streams_cost_one_store_read_per_poll_interval(tmp_path: Path, redis_url: str) -> None:
    store = CountingStore(tmp_path / "podflow.sqlite3")
    app = create_app(settings_for(tmp_path, broker_url=redis_url), store=store, **FAST)
    watchers = 50
    try:
        with serve(app) as api:
            run_ids = [api.submit()["run_id"] for _ in range(5)]  # no worker: they stay PENDING
            watcher = api.app.state.podflow.watcher
            seen: dict[int, list[dict[str, Any]]] = {}

            async def follow_one(i: int, client: httpx.AsyncClient) -> None:
                async with client.stream("GET", f"/api/podcast/runs/{run_ids[i % 5]}/events") as response:
                    events: list[dict[str, Any]] = []
                    seen[i] = events
                    buffer = ""
                    async for text in response.aiter_text():
                        buffer += text
                        while "\n\n" in buffer:
                            block, buffer = buffer.split("\n\n", 1)
                            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                            if "data" in fields:
                                events.append({**fields, "data": json.loads(fields["data"])})

            async def main() -> None:
                async with httpx.AsyncClient(base_url=api.url, timeout=30) as client, anyio.create_task_group() as tg:
                    for i in range(watchers):
                        tg.start_soon(follow_one, i, client)
                    await wait_async(lambda: watcher.subscribers == watchers)
                    before_reads, before_polls = store.reads, watcher.polls
                    await wait_async(lambda: watcher.polls >= before_polls + 5)  # five intervals, 50 watchers
                    polled, read = watcher.polls - before_polls, store.reads - before_reads
                    assert read <= polled + 1, (read, polled)  # one read per interval, not one per watcher
                    now = api.app.state.podflow.clock()
                    for run_id in run_ids:  # every run ends: each stream gets its terminal event and closes
                        store.cancel(run_id, now=now)

            anyio.run(main)
            assert len(seen) == watchers
            for i, events in seen.items():
                assert [e["data"]["status"] for e in events] == ["PENDING", "REVOKED"], i
            assert store.batches >= 5 and watcher.subscribers == 0
    finally:
        store.close()


async def wait_async(probe: Callable[[], bool], *, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not probe():
            await anyio.sleep(0.01)


def test_a_store_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    from api.watch import RunWatcher
    from podflow.errors import StoreUnavailable

    run = make_run()
    answers: list[bool] = [False, False, False, True, True]  # three ticks down, then back

    def fetch(run_ids: Sequence[str]) -> dict[str, Run]:
        if not answers.pop(0):
            raise StoreUnavailable("SQLite store unavailable: disk I/O error")
        return {run.run_id: run}

    async def follow() -> None:
        watcher = RunWatcher(fetch, interval_s=0.01)
        async with watcher.watch(run) as sub:
            while answers:
                await sub.wait(0.05)
        await watcher.close()

    with caplog.at_level("INFO", logger="api.watch"):
        anyio.run(follow)
    lines = [r.getMessage() for r in caplog.records if r.name == "api.watch"]
    assert lines == [
        "events: store unavailable (retrying every 0.01 s): SQLite store unavailable: disk I/O error",
        "events: the store answers again",
    ]
