"""The podcast-creator adapter (the podcast-creator extra) against the fake provider, in process."""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podflow.errors import GenerationError, RunCancelled, TransientGenerationError
from podflow.generation.context import LocalContext
from podflow.generation.podcast_creator import generate
from podflow.generation.providers import ProviderRateLimited, ProviderRejected
from podflow.models import Speaker
from tests.execution import wait_for
from tests.fake_provider import FakeProvider, Reply
from tests.generation.conftest import ConfigFactory, generation_request

# podcast-creator's TTS path (esperanto) opens an async HTTP client per clip and never closes it:
# their sockets are collected here, after each test, rather than in whichever test comes next
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_podcast_creators_clients() -> Iterator[None]:
    yield
    gc.collect()


OUTLINE = {
    "segments": [
        {"name": "Boosters", "description": "Reusable boosters land again.", "size": "short"},
        {"name": "Batteries", "description": "Solid-state cells.", "size": "short"},
    ]
}


def dialogue(segment: int) -> dict[str, Any]:
    """podcast-creator's transcript reply for one segment (its schema names no speakers: scripted)."""
    lines = [("Alex", "So what happened?"), ("Jordan", f"Segment {segment} happened."), ("Alex", "Good.")]
    return {"transcript": [{"speaker": s, "dialogue": d} for s, d in lines]}


def script_episode(fake: FakeProvider) -> None:
    fake.script("chat", Reply(content=OUTLINE), Reply(content=dialogue(1)), Reply(content=dialogue(2)))


def run(configs: ConfigFactory, tmp_path: Path, **kw: Any) -> tuple[LocalContext, Any]:
    ctx = LocalContext(run_id="run_" + "0" * 32, work_dir=tmp_path, config=configs(), **kw)
    return ctx, generate(generation_request(num_segments=2), ctx)


def test_an_episode_in_podflows_shapes(fake: FakeProvider, configs: ConfigFactory, tmp_path: Path) -> None:
    script_episode(fake)
    ctx, result = run(configs, tmp_path)
    assert result.audio_path == tmp_path / "episode.mp3" and result.duration_s > 1
    transcript = json.loads(result.transcript_path.read_text())
    assert [t["text"] for t in transcript["turns"]][:2] == ["So what happened?", "Segment 1 happened."]
    assert {t["speaker"] for t in transcript["turns"]} == {"Alex", "Jordan"}
    outline = json.loads(result.outline_path.read_text())
    assert [s["title"] for s in outline["segments"]] == ["Boosters", "Batteries"]
    speech = fake.calls("speech")
    assert len(speech) == 6 and {c.body["voice"] for c in speech} == {"en-us+m3", "en-us+f3"}
    assert {c.body["model"] for c in speech} == {"tts-fake"} and {c.body["model"] for c in fake.calls("chat")} == {
        "fake-model"
    }
    assert any("clip(s) spoken" in e.message for e in ctx.events) and ctx.events[-1].stage == "done"


def test_429s_that_outlast_its_retries_are_transient(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    script_episode(fake)
    fake.script("speech", *[Reply(status=429, error="Too many concurrent requests")] * 30)
    with pytest.raises(TransientGenerationError, match="Too many concurrent requests"):
        run(configs, tmp_path)


def test_a_401_from_the_llm_fails_naming_the_setting(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(status=401))
    with pytest.raises(ProviderRejected, match="answered 401: check PODFLOW_LLM_API_KEY"):
        run(configs, tmp_path)
    assert len(fake.calls("chat")) == 1  # a 4xx is not retried by podcast-creator either


def test_a_404_from_the_llm_names_the_profiles_model_that_was_called(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(status=404))
    ctx = LocalContext(run_id="run_" + "0" * 32, work_dir=tmp_path, config=configs())
    with pytest.raises(ProviderRejected, match="404 for model 'pc-model': check PODFLOW_LLM_MODEL"):
        generate(generation_request(num_segments=2, llm_model="pc-model"), ctx)
    assert [c.body["model"] for c in fake.calls("chat")] == ["pc-model"]


def test_a_profile_with_a_repeated_voice_is_refused_naming_the_field(configs: ConfigFactory, tmp_path: Path) -> None:
    request = generation_request()
    twins = [Speaker(name=n, voice="alloy", personality="calm") for n in ("Ada", "Bo")]
    profile = request.speaker_profile.model_copy(update={"speakers": twins})
    ctx = LocalContext(run_id=request.run_id, work_dir=tmp_path, config=configs())
    with pytest.raises(GenerationError, match=r"speakers\[1\]\.voice: podcast-creator needs a different voice"):
        generate(dataclasses.replace(request, speaker_profile=profile), ctx)


def test_a_cancel_during_a_hung_llm_call_stops_it_at_once(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(hang_s=60))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(RunCancelled):
        run(configs, tmp_path, cancel_event=cancel)
    assert time.monotonic() - began < 2
    wait_for(lambda: fake.calls("chat")[0].aborted, timeout=2, what="the request to be closed")


def test_a_429_from_the_llm_is_waited_out_and_the_episode_is_made(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(status=429, headers={"Retry-After": "0.2"}), Reply(content=OUTLINE))
    fake.script("chat", Reply(content=dialogue(1)), Reply(content=dialogue(2)))
    _, result = run(configs, tmp_path)
    assert json.loads(result.outline_path.read_text())["segments"][0]["title"] == "Boosters"
    outline_calls = fake.calls("chat")[:2]
    assert [c.status for c in outline_calls] == [429, 200]
    assert outline_calls[1].started - outline_calls[0].ended >= 0.2  # type: ignore[operator]


def test_429s_from_the_llm_that_outlast_its_retries_are_transient_naming_the_llm(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", *[Reply(status=429, headers={"Retry-After": "0"}, error="Rate limit reached")] * 30)
    with pytest.raises(ProviderRateLimited, match=r"^LLM at http://\S+ answered 429: Rate limit reached$"):
        run(configs, tmp_path)
    # podcast-creator's tries (PODFLOW_PROVIDER_RETRIES=2: 3) times the SDK's own (its default 2 retries: 3)
    assert len(fake.calls("chat")) == 9 and not fake.calls("speech")
