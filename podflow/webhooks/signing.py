"""Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``),
made by the specification's own library, ``standardwebhooks``."""

from __future__ import annotations

import binascii
import math
from datetime import datetime

from standardwebhooks import Webhook

__all__ = ["is_webhook_secret", "signed_headers"]


def is_webhook_secret(secret: str) -> bool:
    """Whether ``secret`` is a signing key the specification accepts: ``whsec_`` and base64."""
    if not secret.startswith("whsec_"):
        return False
    try:
        Webhook(secret)
    except (binascii.Error, ValueError):
        return False
    except Exception:
        return False
    return True


def signed_headers(secret: str, *, msg_id: str, now: datetime, body: str) -> dict[str, str]:
    """The headers of one delivery attempt of the event ``msg_id``: its id, the attempt's
    time in Unix seconds, and, given a ``secret``, the signature over the three."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(math.floor(now.timestamp()))}
    if secret:
        headers["webhook-signature"] = Webhook(secret).sign(msg_id, now, body)
    return headers
