"""Priority bands: one queue per band, served in order by a real worker on a real Redis."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from queue import PriorityQueue
from typing import Any

import dramatiq
import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from podflow.worker.bands import BandOrder, band_of, band_queue, band_queues
from podflow.worker.broker import build_broker, close_broker
from tests.execution import finished, one_thread_worker, request, wait_for


def test_each_band_has_its_queue_and_normal_keeps_the_queue_name() -> None:
    assert band_queues("podcast") == {"high": "podcast.high", "normal": "podcast", "low": "podcast.low"}
    assert band_of("podcast", "podcast.high.DQ") == "high"
    assert band_of("podcast", "podcast") == "normal"
    assert band_of("podcast", "other") is None


def test_a_message_goes_to_its_band_queue_and_a_scheduled_one_to_its_delay_queue(redis_url: str) -> None:
    settings = load_settings(env_file=None, broker_url=redis_url)
    broker = build_broker(settings, role="test")
    try:
        dispatcher = QueueDispatcher(broker=broker)
        now = utcnow()
        dispatcher.send("run_high", "msg-high", priority="high", now=now)
        dispatcher.send("run_low", "msg-low", priority="low", start_at=now.replace(year=now.year + 1), now=now)
        client, ns = broker.client, broker.namespace
        assert client.llen(f"{ns}:{band_queue('podcast', 'high')}") == 1
        assert client.llen(f"{ns}:podcast") == 0
        assert client.hlen(f"{ns}:podcast.low.DQ.msgs") == 1  # held by the broker until its start
        from podflow.models import RunRef

        refs = [
            RunRef(run_id="run_high", attempt=0, mode="queue", current_message_id="msg-high", priority="high"),
            RunRef(run_id="run_low", attempt=0, mode="queue", current_message_id="msg-low", priority="low"),
            # asked on its own band's queue: a normal run whose message is on .high is lost
            RunRef(run_id="run_wrong", attempt=0, mode="queue", current_message_id="msg-high"),
        ]
        assert dispatcher.missing(refs) == {"run_wrong"}
    finally:
        close_broker(broker)


class _Worker:
    """What BandOrder reads of a Dramatiq worker: the queues it consumes, and its fetched messages."""

    def __init__(self, *queues: str) -> None:
        self.consumers = dict.fromkeys(queues)
        self.work_queue: PriorityQueue[Any] = PriorityQueue()


def test_a_normal_delivery_yields_to_a_waiting_high_message_and_an_empty_answer_is_reused_briefly(
    redis_url: str,
) -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="test")
    now = [100.0]
    bands = BandOrder(queue_name="podcast", fresh_s=0.02, clock=lambda: now[0])
    bands.before_worker_boot(broker, _Worker("podcast.high", "podcast", "podcast.low"))  # type: ignore[arg-type]
    normal = dramatiq.Message(queue_name="podcast", actor_name="a", args=(), kwargs={}, options={})
    high_list = f"{broker.namespace}:podcast.high"
    try:
        assert not bands.should_yield(broker, normal)  # nothing above: asked Redis
        broker.client.rpush(high_list, "m1")
        now[0] += 0.01
        assert not bands.should_yield(broker, normal)  # within 20 ms: the empty answer holds
        now[0] += 0.015
        assert bands.should_yield(broker, normal)  # asked again: the high message waits
        assert bands.should_yield(broker, normal)  # and "waiting" is never reused
        broker.client.delete(high_list)
        assert not bands.should_yield(broker, normal)
        # a low delivery asks about both bands above it, with an answer of its own
        low = normal.copy(queue_name="podcast.low")
        broker.client.rpush(f"{broker.namespace}:podcast", "m2")
        assert bands.should_yield(broker, low)
    finally:
        close_broker(broker)


def test_a_higher_message_this_worker_fetched_but_has_not_queued_yet_still_comes_first(redis_url: str) -> None:
    """Between a consumer's fetch (off the list, into the worker's acks set) and its
    work queue, a high message is in neither: the acks set, less the high messages
    this worker's threads are processing, still shows it."""
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="test")
    now = [100.0]
    bands = BandOrder(queue_name="podcast", fresh_s=0.02, clock=lambda: now[0])
    bands.before_worker_boot(broker, _Worker("podcast.high", "podcast"))  # type: ignore[arg-type]
    normal = dramatiq.Message(queue_name="podcast", actor_name="a", args=(), kwargs={}, options={})
    running = dramatiq.Message(queue_name="podcast.high", actor_name="a", args=(), kwargs={},
                               options={"redis_message_id": "h1/a"})
    acks = f"{broker.namespace}:__acks__.{broker.broker_id}.podcast.high"
    try:
        broker.client.sadd(acks, "h1/a")  # a high run a thread of this worker processes
        bands.before_process_message(broker, running)
        assert not bands.should_yield(broker, normal)  # nothing waits for it: it runs already
        broker.client.sadd(acks, "h2/b")  # fetched a moment ago, not in the work queue yet
        now[0] += 1
        assert bands.should_yield(broker, normal)
        broker.client.srem(acks, "h2/b")
        bands.after_ack(broker, running)  # done, acknowledged
        broker.client.srem(acks, "h1/a")
        bands.after_ack(broker, running)  # an acknowledgement twice counts once
        now[0] += 1
        assert not bands.should_yield(broker, normal)
    finally:
        close_broker(broker)


def _started_at(run: Run) -> datetime:
    return next(h.at for h in run.history if h.status is RunStatus.STARTED)


@pytest.mark.slow
def test_high_runs_queued_behind_normal_ones_start_before_the_rest(redis_url: str, tmp_path: Path) -> None:
    """One worker thread, 20 normal runs queued, then 3 high: the 3 high start
    before every normal run still waiting when they arrived."""
    with one_thread_worker(tmp_path, redis_url) as (store, dispatcher, worker):
        normal = [submit(store, dispatcher, request("slow:0.4"), now=utcnow()).run for _ in range(20)]
        # the worker is busy with one of them (just started: the highs arrive mid-run)
        wait_for(lambda: store.get_run(normal[1].run_id).status is RunStatus.STARTED, timeout=30, what="a start")
        high = [
            submit(store, dispatcher, request("slow:0.4").model_copy(update={"priority": "high"}), now=utcnow()).run
            for _ in range(3)
        ]
        done = {run.run_id: finished(store, run.run_id, timeout=90) for run in normal + high}
        assert all(run.status is RunStatus.SUCCESS for run in done.values()), worker.log()
        arrived = max(done[run.run_id].enqueued_at for run in high)  # type: ignore[type-var]
        highs = sorted(_started_at(done[run.run_id]) for run in high)
        waiting = sorted(s for run in normal if (s := _started_at(done[run.run_id])) > arrived)
        assert len(waiting) >= 15  # most of the normal runs were still queued
        assert highs[-1] < waiting[0], (highs, waiting[:3])
        assert {done[run.run_id].priority for run in high} == {"high"}
