"""Delivering completion webhooks: claim what is due, POST it, record the outcome.

The obligation is in the store: the write that ends a run sets its
``webhook_due_at`` (:mod:`podflow.store.transitions`). :meth:`Deliverer.deliver_due`
claims due deliveries with a conditional write that pushes their due time past
the POST's timeout (a lease: two schedulers never send one attempt twice at
once), POSTs each (in parallel, up to ``concurrency``), and records the outcome
fenced by the attempt number. A crash between the POST and the record leaves
the delivery due again when the lease runs out: it is sent again (at least
once; the ``webhook-id`` is the same, for the receiver to deduplicate). A 2xx
ends it; any other reply, a timeout (``timeout_s`` for the whole POST, see
:mod:`.deadline`) or a refused connection is retried after
``backoff_s`` doubling (at most ``backoff_max_s``) until ``max_age_s`` after the
run ended, then given up (``expired``). Redirects are not followed, and only
the start of a reply's body is kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from ..errors import StoreError
from ..models import Run, WebhookDelivery
from ..store.base import Store
from ..store.counters import webhook_counter
from ..timeutil import utcnow
from ..views import PathFor, template_paths
from .deadline import Deadline
from .events import event_body, event_id
from .signing import signed_headers
from .targets import host_allowed

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["REPLY_EXCERPT_CHARS", "Attempt", "Deliverer", "DeliveryPolicy"]

log = logging.getLogger(__name__)

#: how much of a receiver's reply body is kept (the rest is never read)
REPLY_EXCERPT_CHARS = 200
#: a claim's lease: four of the POST's timeouts (which bounds it in total) and a
#: margin, for name resolution (no timeout bounds it) and recording the outcome
_LEASE_PHASES = 4
_LEASE_MARGIN_S = 5.0


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How webhooks are sent and retried (PODFLOW_WEBHOOK_*)."""

    secret: str = ""
    timeout_s: float = 10.0
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    max_age_s: float = 86400.0
    allowed_hosts: tuple[str, ...] = ()
    #: deliveries claimed and POSTed at once
    concurrency: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            secret=settings.webhook_secret.get_secret_value(),
            timeout_s=settings.webhook_timeout_s,
            backoff_s=settings.webhook_retry_backoff_s,
            max_age_s=settings.webhook_max_age_s,
            allowed_hosts=settings.webhook_hosts,
        )

    @property
    def lease_s(self) -> float:
        return self.timeout_s * _LEASE_PHASES + _LEASE_MARGIN_S

    def retry_delay_s(self, failed: int) -> float:
        """The wait after the ``failed``-th failed attempt: backoff, doubling, capped."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, failed - 1)))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST got: the HTTP status, or the error that stopped it."""

    status: int | None = None
    error: str | None = None
    excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


def post(client: httpx.Client, url: str, *, body: str, headers: dict[str, str], timeout_s: float) -> Attempt:
    """POST ``body`` to ``url``, not following redirects, within ``timeout_s`` in total
    (connecting, sending and reading the reply); never raises for the receiver's faults.

    A reply not complete (up to the excerpt) by then is a failed attempt, even after a
    2xx status line: the receiver may not have taken the event.
    """
    timed_out = Attempt(error=f"timed out after {timeout_s:g} s")
    with Deadline(timeout_s) as deadline:
        try:
            with client.stream(
                "POST",
                url,
                content=body.encode(),
                # its own connection, never a pooled one: the deadline watches the
                # sockets it sees opened
                headers={**headers, "content-type": "application/json", "connection": "close"},
                timeout=timeout_s,
                follow_redirects=False,
                extensions={"trace": deadline.trace},
            ) as response:
                deadline.watch(response.extensions.get("network_stream"))
                head = b""
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= REPLY_EXCERPT_CHARS * 4 or deadline.passed:  # enough for the excerpt
                        break
                if deadline.passed:
                    return timed_out
                text = head.decode("utf-8", errors="replace")[:REPLY_EXCERPT_CHARS]
                error = None
                if response.is_redirect:
                    error = f"redirect to {response.headers.get('location', '?')} not followed"
                return Attempt(status=response.status_code, error=error, excerpt=text or None)
        except httpx.HTTPError as exc:
            if deadline.passed or isinstance(exc, httpx.TimeoutException):
                return timed_out
            return Attempt(error=f"{type(exc).__name__}: {exc}"[:REPLY_EXCERPT_CHARS])


class Deliverer:
    """Delivers the webhooks that are due, for the process that owns them (the scheduler).

    Parameters:
      store: the store (a callable: opened on first use by its owner).
      policy: signing, timeout and retries.
      path: the links in events (:func:`podflow.views.template_paths` after PODFLOW_PUBLIC_URL).
      client: the HTTP client (tests may pass their own).
      clock: the current time.
    """

    def __init__(
        self,
        *,
        store: Callable[[], Store],
        policy: DeliveryPolicy,
        path: PathFor | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.policy = policy
        self._store = store
        self._path = path or template_paths()
        self._client = client or httpx.Client(follow_redirects=False)
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="webhook")
        self._warned_unsigned = False

    def deliver_due(self, *, now: datetime) -> Counter[str]:
        """Claim and send what is due at ``now``, a batch at a time until nothing is;
        the attempts' outcomes counted (delivered, retried, expired).

        Raises:
          StoreUnavailable: the store cannot be reached (what was claimed is due again
            when its lease runs out).
        """
        counts: Counter[str] = Counter()
        store = self._store()
        while True:
            lease_until = now + timedelta(seconds=self.policy.lease_s)
            claimed = store.claim_webhooks(now=now, lease_until=lease_until, limit=self.policy.concurrency)
            for outcome in self._pool.map(lambda run: self.deliver(store, run), claimed):
                if outcome is not None:
                    counts[outcome] += 1
            if len(claimed) < self.policy.concurrency:
                return counts
            now = self._clock()

    def deliver(self, store: Store, run: Run) -> str | None:
        """One attempt for the claimed ``run`` (``run.webhook_attempts`` is its number);
        its outcome, or None when a later claim took the delivery meanwhile."""
        now = self._clock()
        attempt = self._send(run, now=now)
        delivery, next_at = self.outcome(run, attempt, now=now)
        if not store.record_webhook(run.run_id, run.webhook_attempts, delivery=delivery, next_at=next_at):
            log.info("webhook of %s: attempt %d was overtaken by a later one", run.run_id, run.webhook_attempts)
            return None
        counted = "retried" if delivery.outcome == "retrying" else delivery.outcome
        try:
            store.add_counts({webhook_counter(counted): 1})
        except StoreError as exc:  # a counter is not worth a re-send
            log.warning("webhook counter not updated: %s", exc)
        line = "webhook of %s to %s: attempt %d %s (%s)"
        what = attempt.status if attempt.error is None else attempt.error
        level = logging.INFO if delivery.outcome == "delivered" else logging.WARNING
        log.log(level, line, run.run_id, run.callback_url, run.webhook_attempts, delivery.outcome, what)
        return counted

    def outcome(self, run: Run, attempt: Attempt, *, now: datetime) -> tuple[WebhookDelivery, datetime | None]:
        """What ``attempt`` made of the delivery at ``now``, and when the next one is due (None: none)."""
        last = WebhookDelivery(
            outcome="retrying",
            last_attempt_at=now,
            last_status=attempt.status,
            last_error=attempt.error,
            reply_excerpt=attempt.excerpt,
        )
        if attempt.ok:
            return last.model_copy(update={"outcome": "delivered", "delivered_at": now}), None
        next_at = now + timedelta(seconds=self.policy.retry_delay_s(run.webhook_attempts))
        ended = run.finished_at or run.updated_at
        if next_at > ended + timedelta(seconds=self.policy.max_age_s):
            return last.model_copy(update={"outcome": "expired"}), None
        return last, next_at

    def _send(self, run: Run, *, now: datetime) -> Attempt:
        url = run.callback_url
        if url is None:  # not claimable without one; a run edited by hand
            return Attempt(error="no callback_url")
        if not host_allowed(url, self.policy.allowed_hosts):
            return Attempt(error="host not allowed by PODFLOW_WEBHOOK_ALLOWED_HOSTS")
        if not self.policy.secret and not self._warned_unsigned:
            self._warned_unsigned = True
            log.warning("PODFLOW_WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        body = event_body(run, self._path)
        headers = signed_headers(self.policy.secret, msg_id=event_id(run), now=now, body=body)
        return post(self._client, url, body=body, headers=headers, timeout_s=self.policy.timeout_s)

    def scheduled_delivery(self) -> None:
        """:meth:`deliver_due` for a scheduler job: never raises, so the next tick runs."""
        try:
            self.deliver_due(now=self._clock())
        except StoreError as exc:
            log.warning("webhook delivery paused, the store is unavailable: %s", exc)
        except Exception:  # a bug: say so loudly, but keep the schedule
            log.exception("webhook delivery failed unexpectedly; trying again next tick")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


def build_deliverer(settings: Settings, store: Callable[[], Store]) -> Deliverer:
    """The deliverer the settings describe, over ``store``."""
    return Deliverer(
        store=store, policy=DeliveryPolicy.from_settings(settings), path=template_paths(settings.public_url)
    )
