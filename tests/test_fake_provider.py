"""The fake provider itself: what the other tests rely on it for."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fake_provider import FakeProvider, Reply, schema_instance


def test_a_schema_instance_takes_every_property_the_minimum_items_and_enums_in_turn() -> None:
    schema = {
        "type": "object",
        "properties": {
            "turns": {
                "type": "array",
                "minItems": 3,
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "properties": {"speaker": {"type": "string", "enum": ["A", "B"]}, "text": {"type": "string"}},
                },
            }
        },
    }
    value = schema_instance(schema)
    assert [t["speaker"] for t in value["turns"]] == ["A", "B", "A"]
    assert [t["text"] for t in value["turns"]] == ["Fake text 1.", "Fake text 2.", "Fake text 3."]


def test_scripted_replies_latency_and_counters(fake: FakeProvider) -> None:
    fake.latency_s["speech"] = 0.2
    fake.script("chat", Reply(status=429, headers={"Retry-After": "2"}))
    with httpx.Client(base_url=fake.url) as client:
        refused = client.post("/chat/completions", json={"model": "m", "messages": []})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
        assert client.post("/chat/completions", json={"model": "m", "messages": []}).status_code == 200
        began = time.monotonic()
        audio = client.post("/audio/speech", json={"input": "hello", "voice": "v", "response_format": "mp3"})
        assert time.monotonic() - began >= 0.2
    assert audio.headers["content-type"] == "audio/mpeg" and audio.content[:3] in (b"ID3", b"\xff\xf3", b"\xff\xfb")
    assert [c.status for c in fake.calls("chat")] == [429, 200] and fake.peak("speech") == 1


def test_a_hang_ends_when_the_client_leaves(fake: FakeProvider) -> None:
    fake.script("chat", Reply(hang_s=30))
    with httpx.Client(base_url=fake.url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json={})
    deadline = time.monotonic() + 2
    while not fake.calls("chat")[0].aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.calls("chat")[0].aborted and fake.in_flight("chat") == 0
