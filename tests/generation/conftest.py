"""Sources, requests and process checks for the generation tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from podflow.generation.base import GenerationRequest, GeneratorConfig
from podflow.generation.providers import Endpoint, Provider, RetryPolicy, SlotPool
from podflow.generation.providers.endpoint import Kind
from podflow.models import Source
from podflow.profiles import BUNDLED_EPISODE_PROFILES, BUNDLED_SPEAKER_PROFILES
from podflow.sources import ingest_source
from tests.conftest import T0
from tests.fake_provider import FakeProvider

ARTICLE = """# Science and City Notes

## Reusable boosters
The orbital booster landed on the drone ship for the twentieth time.
Reusable boosters cut the cost of reaching orbit by a large factor.
Engineers now refurbish each booster in weeks rather than months.
Critics say the savings depend on how often the fleet flies.

## River cleanup
Volunteers removed two tons of plastic from the river over three weekends.
Local schools joined the effort and counted every bottle they found.
The city promised new bins along the river banks before summer.

## Solid-state batteries
Solid-state batteries promise more range for electric cars.
Manufacturers expect pilot production of the batteries next year.
Safety improves because the solid electrolyte does not burn.
"""

NOTES = """Weekend market report

The farmers market moved to the old harbour square this spring.
Stall holders reported more visitors than in any previous season.
"""


def make_source(text: str = ARTICLE, filename: str = "article.md") -> Source:
    return ingest_source(
        content=text, title=None, filename=filename, content_type=None, max_bytes=1_000_000, now=T0
    )


def generation_request(
    *,
    episode: str = "tech_news",
    speakers: str = "dual_host",
    sources: list[Source] | None = None,
    briefing_suffix: str | None = None,
    episode_name: str = "Weekly Roundup",
    **episode_overrides: object,
) -> GenerationRequest:
    """A request for bundled profiles (episode fields overridable), resolved as build_request does."""
    episode_profile = next(p for p in BUNDLED_EPISODE_PROFILES if p.name == episode)
    if episode_overrides:
        episode_profile = episode_profile.model_copy(update=episode_overrides)
    speaker_profile = next(p for p in BUNDLED_SPEAKER_PROFILES if p.name == speakers)
    briefing = "\n\n".join(part for part in (episode_profile.default_briefing, briefing_suffix) if part)
    return GenerationRequest(
        run_id="run_" + "0" * 32,
        episode_name=episode_name,
        episode_profile=episode_profile,
        speaker_profile=speaker_profile,
        sources=sources if sources is not None else [make_source()],
        briefing=briefing,
    )


def espeak_children() -> list[int]:
    """Pids of espeak-ng processes whose parent is this process (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm.startswith("espeak"):
            found.append(int(entry.name))
    return found


# -- the fake provider -----------------------------------------------------------------------

#: quick retries for tests: the policy's shape, not its production pauses
QUICK = RetryPolicy(retries=2, backoff_s=0.01, backoff_max_s=0.05, rate_limit_wait_s=10)


def provider(
    fake: FakeProvider,
    kind: Kind = "llm",
    *,
    model: str = "fake-model",
    policy: RetryPolicy = QUICK,
    slots: SlotPool | None = None,
    timeout_s: float = 10.0,
    api_key: str = "sk-test",
) -> Provider:
    endpoint = Endpoint(kind=kind, base_url=fake.url, model=model, api_key=api_key, timeout_s=timeout_s)
    return Provider(endpoint=endpoint, policy=policy, slots=slots)


ConfigFactory = Callable[..., GeneratorConfig]


@pytest.fixture
def configs(fake: FakeProvider) -> Iterator[ConfigFactory]:
    """``configs(llm=..., tts=..., **fields)``: generator configurations whose providers are
    ``fake``; their connections are closed after the test."""
    made: list[Provider] = []

    def make(*, llm: str = "openai", tts: str = "openai", **fields: object) -> GeneratorConfig:
        values: dict[str, object] = {
            "llm": llm,
            "tts": tts,
            "tts_parallelism": 4,
            "llm_provider": provider(fake, "llm"),
            "tts_provider": provider(fake, "tts", model="tts-fake"),
            **fields,
        }
        config = GeneratorConfig(**values)  # type: ignore[arg-type]
        made.extend(p for p in (config.llm_provider, config.tts_provider) if p is not None)
        return config

    yield make
    for p in made:
        p.close()
