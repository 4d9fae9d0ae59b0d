"""Completion webhooks: when a run ends, its event is POSTed to the run's ``callback_url``.

- :mod:`.targets`: where an event may go (PODFLOW_WEBHOOK_URL, PODFLOW_WEBHOOK_ALLOWED_HOSTS),
  decided at submit;
- :mod:`.events`: the event (type, stable id, body: the run as the API shows it);
- :mod:`.signing`: Standard Webhooks headers, signed with ``standardwebhooks``;
- :mod:`.delivery`: claim what is due, POST it, record the outcome, retry with backoff;
- :mod:`.deadline`: the POST's total time limit (httpx's own bounds each phase).

The obligation itself is written by the store, in the transition that ends the
run (:mod:`podflow.store.transitions`); the scheduler process runs the deliverer.
"""

from __future__ import annotations

from .signing import is_webhook_secret, signed_headers
from .targets import NO_WEBHOOKS, WebhookTargets, host_allowed

__all__ = ["NO_WEBHOOKS", "WebhookTargets", "host_allowed", "is_webhook_secret", "signed_headers"]
