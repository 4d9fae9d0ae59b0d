"""The generator's configuration, from the settings (the edge: actors, thread mode, the CLI).

The providers are built once per process: their concurrency caps hold slots
in Redis (:class:`~.providers.SharedSlots`, at PODFLOW_LIMITS_URL or the
broker's Redis) for worker processes, or in memory
(:class:`~.providers.LocalSlots`) in thread mode, where one process does all
the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store.counters import CounterBuffer, provider_call_counter
from .base import GeneratorConfig
from .providers import Endpoint, LocalSlots, Provider, RetryPolicy, SharedSlots, SlotPool
from .providers.endpoint import Kind
from .providers.slots import shared_backend

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["generator_config"]


def generator_config(settings: Settings, *, counts: CounterBuffer | None = None) -> GeneratorConfig:
    """What PODFLOW_LLM*, PODFLOW_TTS*, PODFLOW_AUDIO_FORMAT and PODFLOW_PROVIDER_* say.

    ``counts``: where the providers count their calls by outcome (the process's
    counters, added to the store by its heartbeat thread)."""
    policy = RetryPolicy(
        retries=settings.provider_retries,
        backoff_s=settings.provider_backoff_s,
        rate_limit_wait_s=settings.provider_rate_limit_wait_s,
    )
    llm, tts = _endpoint(settings, "llm"), _endpoint(settings, "tts")
    return GeneratorConfig(
        tts=settings.tts,
        tts_timeout_s=settings.tts_timeout_s,
        tts_parallelism=settings.tts_parallelism,
        llm=settings.llm,
        audio_format=settings.audio_format,
        llm_provider=Provider(
            endpoint=llm,
            policy=policy,
            slots=_slots(settings, llm, settings.llm_max_concurrency),
            on_call=_counter(counts, "llm"),
        ),
        tts_provider=Provider(
            endpoint=tts,
            policy=policy,
            slots=_slots(settings, tts, settings.tts_max_concurrency),
            on_call=_counter(counts, "tts"),
        ),
        llm_reasks=settings.llm_reasks,
        llm_source_chars=settings.llm_source_chars,
    )


def _counter(counts: CounterBuffer | None, endpoint: Kind) -> Callable[[str], None] | None:
    if counts is None:
        return None
    return lambda outcome: counts.add(provider_call_counter(endpoint, outcome))


def _endpoint(settings: Settings, kind: Kind) -> Endpoint:
    """PODFLOW_<KIND>_BASE_URL, _MODEL, _API_KEY and _TIMEOUT."""
    return Endpoint(
        kind=kind,
        base_url=getattr(settings, f"{kind}_base_url"),
        model=getattr(settings, f"{kind}_model"),
        api_key=getattr(settings, f"{kind}_api_key").get_secret_value(),
        timeout_s=getattr(settings, f"{kind}_timeout_s"),
    )


def _slots(settings: Settings, endpoint: Endpoint, limit: int) -> SlotPool | None:
    if not limit:
        return None
    if settings.mode == "thread":
        return LocalSlots(name=endpoint.slot_name, limit=limit)
    return SharedSlots(
        backend=shared_backend(settings.caps_url),
        name=endpoint.slot_name,
        limit=limit,
        ttl_s=settings.heartbeat_timeout_s,
        refresh_s=settings.heartbeat_interval_s,
    )
