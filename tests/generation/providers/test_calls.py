"""One provider call: the cap, backpressure after a 429, classified retries (real SDK, fake server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import openai
import pytest

from podflow.generation.loop import Reporter
from podflow.generation.providers import LocalSlots, ProviderRateLimited, ProviderRejected, ProviderUnavailable
from podflow.generation.providers.calls import Provider
from podflow.generation.providers.policy import RetryPolicy
from podflow.generation.providers.slots import SharedSlots, SlotPool, shared_backend
from tests.execution import wait_for
from tests.fake_provider import FakeProvider, Reply
from tests.generation.conftest import provider


def notes(reporter: Reporter) -> list[str]:
    found = []
    while not reporter._queue.empty():
        found.append(reporter._queue.get_nowait()[2])
    return found


async def chat(client: openai.AsyncOpenAI) -> Any:
    return await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def call(p: Provider, reporter: Reporter | None = None, times: int = 1) -> list[Any]:
    async def main() -> list[Any]:
        try:
            calls = (p.call(chat, reporter=reporter or Reporter("x", 0)) for _ in range(times))
            return list(await asyncio.gather(*calls))
        finally:
            await p.aclose()

    return asyncio.run(main())


def test_a_429_is_waited_out_no_call_sooner_than_its_retry_after(fake: FakeProvider) -> None:
    fake.script("chat", *[Reply(status=429, headers={"Retry-After": "1"})] * 2)
    reporter = Reporter("outline", 0)
    began = time.monotonic()
    [reply] = call(provider(fake), reporter)
    assert reply.choices[0].message.content == "Fake reply."
    calls = fake.calls("chat")
    assert [c.status for c in calls] == [429, 429, 200]
    assert all(b.started - a.ended >= 1.0 for a, b in pairwise(calls))  # type: ignore[operator]
    assert time.monotonic() - began >= 2.0
    said = "answered 429: Too many concurrent requests for this model. (trying again in 1.0 s)"
    assert notes(reporter)[0].endswith(said)


def test_a_429_holds_every_call_of_the_process_to_that_endpoint(fake: FakeProvider) -> None:
    fake.latency_s["chat"] = 0.2  # the three calls are in flight together when the 429 comes
    fake.script("chat", Reply(status=429, headers={"Retry-After": "1"}))
    call(provider(fake), times=3)
    calls = sorted(fake.calls("chat"), key=lambda c: c.started)
    refused = next(c for c in calls if c.status == 429)
    later = [c for c in calls if c.started > refused.ended]  # type: ignore[operator]
    assert later and all(c.started - refused.ended >= 1.0 for c in later)  # type: ignore[operator]


def test_429s_past_the_bound_cost_the_attempt(fake: FakeProvider) -> None:
    fake.script("chat", *[Reply(status=429, headers={"Retry-After": "0.3"})] * 10)
    policy = RetryPolicy(rate_limit_wait_s=1.0)
    given_up = r"answered 429: .*after waiting 0.9 s of PODFLOW_PROVIDER_RATE_LIMIT_WAIT=1"
    with pytest.raises(ProviderRateLimited, match=given_up):
        call(provider(fake, policy=policy))
    assert len(fake.calls("chat")) == 4  # three waits of 0.3 s fit in the bound, a fourth would not


def test_a_5xx_is_retried_in_the_attempt_then_given_up(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=500), Reply(status=503))
    assert call(provider(fake))  # two retries (PODFLOW_PROVIDER_RETRIES=2) were enough
    fake.script("chat", *[Reply(status=502)] * 3)
    with pytest.raises(ProviderUnavailable, match=r"answered 502: .* \(after 3 tries \(PODFLOW_PROVIDER_RETRIES=2\)\)"):
        call(provider(fake))
    assert len(fake.calls("chat")) == 3 + 3


def test_a_refusal_fails_at_once_without_a_retry(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=401))
    with pytest.raises(ProviderRejected, match="check PODFLOW_LLM_API_KEY"):
        call(provider(fake))
    assert len(fake.calls("chat")) == 1


def test_the_cap_holds_and_a_waiting_call_says_so(fake: FakeProvider) -> None:
    fake.latency_s["chat"] = 0.2
    reporter = Reporter("outline", 0)
    call(provider(fake, slots=LocalSlots(name="llm:x", limit=2)), reporter, times=5)
    assert fake.peak("chat") == 2 and len(fake.calls("chat")) == 5
    assert "waiting for a LLM slot (2/2 in use)" in notes(reporter)


def test_a_cancelled_call_closes_its_request_and_gives_its_slot_back(fake: FakeProvider) -> None:
    fake.script("chat", Reply(hang_s=30))
    slots = LocalSlots(name="llm:x", limit=1)
    p = provider(fake, slots=slots)

    async def main() -> None:
        task = asyncio.create_task(p.call(chat, reporter=Reporter("x", 0)))
        while fake.in_flight("chat") == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await p.aclose()

    asyncio.run(main())
    time.sleep(0.1)
    [hung] = fake.calls("chat")
    assert hung.aborted and slots.in_use() == 0


@pytest.fixture(params=["local", "shared"])
def one_slot(request: pytest.FixtureRequest) -> Iterator[SlotPool]:
    """A cap of one call: in this process, or on a real redis-server (as worker processes share it)."""
    if request.param == "local":
        yield LocalSlots(name="llm:x", limit=1)
        return
    backend = shared_backend(request.getfixturevalue("redis_url"))
    pool = SharedSlots(backend=backend, name="llm:x", limit=1, ttl_s=5.0, refresh_s=0.1)
    yield pool
    pool.close()


def test_a_call_cancelled_while_it_waits_for_a_slot_sends_nothing_and_takes_no_slot(
    fake: FakeProvider, one_slot: SlotPool
) -> None:
    fake.script("chat", Reply(hang_s=30))  # holds the only slot
    p = provider(fake, slots=one_slot)
    reporter = Reporter("outline", 0)

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    async def main() -> float:
        holder = asyncio.create_task(p.call(chat, reporter=Reporter("x", 0)))
        await until(lambda: fake.in_flight("chat") > 0, "the holder's call")
        waiter = asyncio.create_task(p.call(chat, reporter=reporter))
        await until(lambda: not reporter._queue.empty(), "the waiter to say it waits for a slot")
        began = time.monotonic()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        cancelled_in = time.monotonic() - began
        assert one_slot.in_use() == 1  # the holder's, still
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        fake.script("chat", Reply())
        await p.call(chat, reporter=Reporter("x", 0))  # the slot came back: a later call gets it
        await p.aclose()
        return cancelled_in

    assert asyncio.run(main()) < 2  # at once: nothing to wait for but the next slot poll
    assert "waiting for a LLM slot (1/1 in use)" in notes(reporter)
    hung, later = fake.calls("chat")  # none from the waiter
    assert later.status == 200
    wait_for(lambda: hung.aborted, timeout=2, what="the hung request to be closed")
    assert one_slot.in_use() == 0


def test_every_request_is_counted_by_how_it_ended(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=429, headers={"Retry-After": "0.1"}), Reply(status=503), Reply(hang_s=5))
    outcomes: list[str] = []
    p = provider(fake, timeout_s=0.3)
    p.on_call = outcomes.append
    call(p)  # 429, 503, a timeout, then an answer: four requests sent, one billed
    assert outcomes == ["429", "5xx", "timeout", "ok"]
    fake.script("chat", Reply(status=401))
    with pytest.raises(ProviderRejected):
        call(p)
    assert outcomes[-1] == "4xx"
