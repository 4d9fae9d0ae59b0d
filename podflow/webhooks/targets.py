"""Where a run's completion webhook may go: resolved at submit, checked again at delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import InvalidInput

__all__ = ["NO_WEBHOOKS", "WebhookTargets", "host_allowed"]


def host_allowed(url: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether ``url`` is http(s) and its host is one of ``allowed_hosts`` (``*.example.com``:
    its subdomains; none given: any host)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    if not allowed_hosts:
        return True
    return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in allowed_hosts)


@dataclass(frozen=True, slots=True)
class WebhookTargets:
    """The operator's webhook policy: ``default_url`` (PODFLOW_WEBHOOK_URL) for runs
    that name none, and ``allowed_hosts`` (PODFLOW_WEBHOOK_ALLOWED_HOSTS; empty: any)."""

    default_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()

    def resolve(self, callback_url: str | None) -> str | None:
        """Where the event of a run asking for ``callback_url`` goes (None: nowhere).

        Raises:
          InvalidInput: (field ``callback_url``) its host is not allowed.
        """
        url = callback_url or self.default_url
        if url is not None and not host_allowed(url, self.allowed_hosts):
            allowed = ", ".join(self.allowed_hosts)
            raise InvalidInput(f"the host of this URL is not allowed (PODFLOW_WEBHOOK_ALLOWED_HOSTS: {allowed})",
                               field="callback_url")  # fmt: skip
        return url


#: no default URL, any host
NO_WEBHOOKS = WebhookTargets()
