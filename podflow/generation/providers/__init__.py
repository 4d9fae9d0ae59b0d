"""OpenAI-compatible providers: endpoints, the one retry policy, cluster-wide caps.

=================  ===========================================================
``endpoint``       where a provider is and which settings name it
``errors``         podflow's provider errors; :func:`classify` maps SDK errors
``policy``         the in-attempt retry decisions (pure, time as a parameter)
``slots``          concurrency caps: Dramatiq's ConcurrentRateLimiter on Redis
``calls``          :class:`Provider`: cap + backpressure + retries + SDK client
=================  ===========================================================
"""

from __future__ import annotations

from .calls import Provider
from .endpoint import Endpoint
from .errors import ProviderRateLimited, ProviderRejected, ProviderUnavailable, UnusableReply, classify
from .policy import RetryPolicy
from .slots import LocalSlots, SharedSlots, SlotPool

__all__ = [
    "Endpoint",
    "LocalSlots",
    "Provider",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderUnavailable",
    "RetryPolicy",
    "SharedSlots",
    "SlotPool",
    "UnusableReply",
    "classify",
]
