"""One provider, as podflow calls it: a cap, backpressure, classified retries, one SDK client.

:meth:`Provider.call` is the only way podflow's generators reach a provider.
For one request it

1. takes a slot under the cap (PODFLOW_{LLM,TTS}_MAX_CONCURRENCY), waiting in
   short cancellable steps and saying so in progress
   (``waiting for a TTS slot (4/4 in use)``), and holds it until the call
   is done, retries included;
2. waits while the provider's last 429 asks this process to hold off (a
   ``Retry-After`` holds every call to that endpoint, not just the refused one);
3. sends the request with the ``openai`` SDK (its own retries off) and, on
   failure, asks :func:`.errors.classify` what it means and
   :func:`.policy.next_wait` whether and when to try again;
4. tells ``on_call`` how each request ended (``ok``, ``429``, ``5xx``, ``4xx``,
   ``timeout``, ``connection``, ``cancelled``): the process's counters for ``/metrics``.

It runs on the background loop (:mod:`podflow.generation.loop`), so a
cancellation lands at any ``await``: the request's connection is closed and
the slot released.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from ...timeutil import utcnow
from ..loop import Reporter
from .endpoint import Endpoint
from .errors import Failure, classify
from .policy import RetryPolicy, Tries, next_wait
from .slots import Slot, SlotPool

if TYPE_CHECKING:  # the SDK (about a second and tens of MiB to import) loads with the first provider
    # call, not with every worker: see tests/test_imports.py
    import openai

__all__ = ["Provider"]

T = TypeVar("T")

#: waiting for a slot: first and longest pause between two tries
_SLOT_POLL_MIN_S = 0.05
_SLOT_POLL_MAX_S = 0.5
#: how often a long wait for a slot is reported again
_SLOT_REPORT_S = 5.0


class Provider:
    """An endpoint with its cap and retry policy. Used from the background loop only.

    Parameters:
      endpoint: where it is and which settings name it.
      policy: the in-attempt retries.
      slots: the cap (None: no cap).
      clock: wall-clock time (reads HTTP-date ``Retry-After`` headers).
      on_call: ``on_call(outcome)`` after every request sent (see the module docstring).
    """

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        policy: RetryPolicy | None = None,
        slots: SlotPool | None = None,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.on_call = on_call
        self.policy = policy or RetryPolicy()
        self.slots = slots
        self._clock = clock
        self._jitter = jitter
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._not_before = 0.0  # monotonic: no request before (the last Retry-After)

    @property
    def what(self) -> str:
        return self.endpoint.kind.upper()

    def client(self) -> openai.AsyncOpenAI:
        """The SDK client (made on the loop, where it is used), with the SDK's retries off."""
        if self._client is None:
            self._client_loop = asyncio.get_running_loop()
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.endpoint.base_url,
                api_key=self.endpoint.api_key or "unused",  # local servers take none; the SDK wants one
                timeout=self.endpoint.timeout_s,
                max_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client's connections (on the loop that used it); the next call opens anew."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """:meth:`aclose` from any thread, on the loop the client was made on (if it still runs)."""
        event_loop = self._client_loop
        if self._client is not None and event_loop is not None and event_loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), event_loop).result(timeout_s)

    async def call(
        self,
        send: Callable[[openai.AsyncOpenAI], Awaitable[T]],
        *,
        reporter: Reporter,
        model: str | None = None,
        voice: str | None = None,
    ) -> T:
        """``await send(client)`` under the cap, retried as the policy says.

        ``model`` and ``voice`` are what ``send`` asks for, named by a refusal
        (``model`` None: the endpoint's).

        Raises:
          ProviderRejected: a 4xx other than 429 (at once).
          ProviderUnavailable: 5xx, timeouts or connection errors past the retries.
          ProviderRateLimited: 429s past the rate-limit wait.
        """
        import openai  # for its errors (loaded by now: see the TYPE_CHECKING import)

        slot = await self._take_slot(reporter)
        tries = Tries()
        try:
            while True:
                await self._hold_off()
                try:
                    reply = await send(self.client())
                except asyncio.CancelledError:
                    self._count("cancelled")
                    raise
                except openai.OpenAIError as exc:
                    failure = classify(exc, self.endpoint, now=self._clock(), model=model, voice=voice)
                    self._count("4xx" if failure is None else failure.outcome)
                    if failure is None:
                        raise
                    wait = next_wait(failure, tries, self.policy, jitter=self._jitter())
                    if wait is None:
                        raise _given_up(failure, tries, self.policy).error() from None
                    if failure.kind == "rate_limited":
                        self._not_before = max(self._not_before, time.monotonic() + wait)
                    reporter.note(f"{failure.message} (trying again in {wait:.1f} s)")
                    await asyncio.sleep(wait)
                else:
                    self._count("ok")
                    return reply
        finally:
            if slot is not None:
                slot.release()

    def _count(self, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(outcome)

    async def _hold_off(self) -> None:
        while (left := self._not_before - time.monotonic()) > 0:
            await asyncio.sleep(left)

    async def _take_slot(self, reporter: Reporter) -> Slot | None:
        if self.slots is None:
            return None
        pause, reported, last = _SLOT_POLL_MIN_S, -1, 0.0
        while True:
            slot = self.slots.try_acquire()
            if slot is not None:
                return slot
            in_use, now = self.slots.in_use(), time.monotonic()
            if in_use != reported or now - last >= _SLOT_REPORT_S:
                reporter.note(f"waiting for a {self.what} slot ({in_use}/{self.slots.limit} in use)")
                reported, last = in_use, now
            await asyncio.sleep(pause * (1 + self._jitter()))
            pause = min(_SLOT_POLL_MAX_S, pause * 2)


def _given_up(failure: Failure, tries: Tries, policy: RetryPolicy) -> Failure:
    """``failure`` with what was tried before giving up, when something was."""
    if failure.kind == "rate_limited":
        bound = f"PODFLOW_PROVIDER_RATE_LIMIT_WAIT={policy.rate_limit_wait_s:g}"
        why = f"after waiting {tries.rate_limit_waited_s:g} s of {bound}"
    elif failure.kind == "transient":
        why = f"after {tries.transient + 1} tries (PODFLOW_PROVIDER_RETRIES={policy.retries})"
    else:
        return failure
    return replace(failure, message=f"{failure.message} ({why})")
