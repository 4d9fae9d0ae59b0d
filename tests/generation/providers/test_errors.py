"""Provider errors, classified once: what each status means and which setting it names (real SDK, fake server)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from podflow.generation.providers.endpoint import Endpoint
from podflow.generation.providers.errors import Failure, ProviderRejected, ProviderUnavailable, classify
from tests.conftest import T0
from tests.fake_provider import FakeProvider, Reply
from tests.servers import free_port


def failure_of(
    endpoint: Endpoint,
    call: Callable[[openai.AsyncOpenAI], Awaitable[Any]],
    voice: str | None = None,
    model: str | None = None,
) -> Failure | None:
    async def attempt() -> Failure | None:
        client = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key="sk-x", max_retries=0, timeout=endpoint.timeout_s
        )
        try:
            await call(client)
        except openai.OpenAIError as exc:
            return classify(exc, endpoint, now=T0, model=model, voice=voice)
        finally:
            await client.close()
        raise AssertionError("the call succeeded")

    return asyncio.run(attempt())


def chat(client: openai.AsyncOpenAI) -> Awaitable[Any]:
    return client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])


def speech(client: openai.AsyncOpenAI) -> Awaitable[Any]:
    return client.audio.speech.create(model="tts-x", voice="nobody", input="hi", response_format="wav")


def llm(fake: FakeProvider, **kw: Any) -> Endpoint:
    return Endpoint(kind="llm", base_url=fake.url, model="gpt-x", **kw)


def test_a_401_is_permanent_and_names_the_api_key_setting(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=401))
    failure = failure_of(llm(fake), chat)
    assert failure is not None and failure.kind == "permanent" and failure.status == 401
    assert failure.message == (
        f"LLM at {fake.url} answered 401: check PODFLOW_LLM_API_KEY (Incorrect API key provided.)"
    )
    assert isinstance(failure.error(), ProviderRejected)


def test_a_404_names_the_model_settings_and_the_base_url(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=404))
    failure = failure_of(llm(fake), chat)
    assert failure is not None and failure.kind == "permanent"
    assert "404 for model 'gpt-x': check PODFLOW_LLM_MODEL (or the profile's llm_model)" in failure.message
    assert "PODFLOW_LLM_BASE_URL, which ends in /v1" in failure.message


def test_a_refusal_names_the_model_called_when_a_profile_overrides_the_setting(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=404))
    failure = failure_of(llm(fake), chat, model="gpt-profile")  # the episode profile's llm_model
    assert failure is not None and failure.kind == "permanent"
    assert "404 for model 'gpt-profile': check PODFLOW_LLM_MODEL (or the profile's llm_model)" in failure.message
    assert "gpt-x" not in failure.message  # PODFLOW_LLM_MODEL, not the model called
    fake.voices = {"alloy"}
    endpoint = Endpoint(kind="tts", base_url=fake.url, model="tts-x")
    failure = failure_of(endpoint, speech, voice="nobody", model="tts-hd")  # the speaker profile's tts_model
    assert failure is not None and failure.message.startswith(f"TTS voice 'nobody' unknown to tts-hd at {fake.url}")


@pytest.mark.parametrize("status", [400, 403, 422])
def test_other_refusals_are_permanent(fake: FakeProvider, status: int) -> None:
    fake.script("chat", Reply(status=status))
    failure = failure_of(llm(fake), chat)
    assert failure is not None and failure.kind == "permanent" and failure.status == status


def test_a_voice_the_tts_server_does_not_know_is_named(fake: FakeProvider) -> None:
    fake.voices = {"alloy"}
    endpoint = Endpoint(kind="tts", base_url=fake.url, model="tts-x")
    failure = failure_of(endpoint, speech, voice="nobody")
    assert failure is not None and failure.kind == "permanent"
    assert failure.message.startswith(f"TTS voice 'nobody' unknown to tts-x at {fake.url}")


def test_a_429_is_rate_limited_with_its_retry_after(fake: FakeProvider) -> None:
    fake.script("chat", Reply(status=429, headers={"Retry-After": "7"}))
    failure = failure_of(llm(fake), chat)
    assert failure is not None and (failure.kind, failure.retry_after_s) == ("rate_limited", 7.0)
    assert "Too many concurrent requests" in failure.message


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
def test_server_errors_are_transient(fake: FakeProvider, status: int) -> None:
    fake.script("chat", Reply(status=status))
    failure = failure_of(llm(fake), chat)
    assert failure is not None and failure.kind == "transient"
    assert isinstance(failure.error(), ProviderUnavailable)


def test_a_timeout_is_transient_and_names_the_timeout_setting(fake: FakeProvider) -> None:
    fake.script("chat", Reply(hang_s=5))
    failure = failure_of(llm(fake, timeout_s=0.2), chat)
    assert failure is not None and failure.kind == "transient"
    assert failure.message == f"LLM at {fake.url} did not answer within 0.2 s (PODFLOW_LLM_TIMEOUT)"


def test_a_connection_refused_is_transient_and_names_the_base_url() -> None:
    endpoint = Endpoint(kind="tts", base_url=f"http://127.0.0.1:{free_port()}/v1", model="tts-x")
    failure = failure_of(endpoint, speech)
    assert failure is not None and failure.kind == "transient"
    assert failure.message.startswith(f"TTS at {endpoint.base_url} unreachable")
    assert "PODFLOW_TTS_BASE_URL" in failure.message


def test_what_is_not_a_provider_error_is_not_classified() -> None:
    assert classify(ValueError("a bug"), Endpoint(kind="llm", base_url="http://x/v1", model="m"), now=T0) is None
