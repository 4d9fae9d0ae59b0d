"""Episode and speaker profiles over HTTP: the bundled ones, create, get, replace, delete, voice checks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, error

NEW: dict[str, dict[str, Any]] = {
    "episode": {"name": "weekly", "description": "A weekly recap.", "num_segments": 3, "default_briefing": "Recap."},
    "speaker": {
        "name": "duo",
        "speakers": [
            {"name": "Ada", "voice": "en-us", "personality": "Curious."},
            {"name": "Bo", "voice": "en-gb+f2", "personality": "Dry."},
        ],
    },
}


def test_the_bundled_profiles_are_listed_by_name(api: Api) -> None:
    episodes = api.client.get("/api/podcast/episode-profiles").json()["profiles"]
    assert [p["name"] for p in episodes] == ["deep_dive", "quick_brief", "tech_news", "tech_news_zh"]
    speakers = api.client.get("/api/podcast/speaker-profiles").json()["profiles"]
    assert [p["name"] for p in speakers] == ["dual_host", "dual_host_zh", "panel", "solo"]


@pytest.mark.parametrize("kind", ["episode", "speaker"])
def test_a_profile_is_created_once_fetched_replaced_and_deleted(api: Api, kind: str) -> None:
    base, profile = f"/api/podcast/{kind}-profiles", NEW[kind]
    url = f"{base}/{profile['name']}"
    created = api.client.post(base, json=profile)
    assert created.status_code == 201 and created.json()["name"] == profile["name"]
    error(api.client.post(base, json=profile), 409, "already_exists")
    assert api.client.get(url).json() == created.json()
    without_name = {k: v for k, v in profile.items() if k != "name"} | {"description": "Edited."}
    replaced = api.client.put(url, json=without_name)
    assert replaced.status_code == 200 and replaced.json()["description"] == "Edited."
    assert api.client.get(url).json()["description"] == "Edited."
    renamed = api.client.put(url, json={**profile, "name": "other"})
    assert error(renamed, 422, "validation_error")["details"][0]["field"] == "name"
    assert api.client.delete(url).status_code == 204
    error(api.client.get(url), 404, "not_found")
    error(api.client.put(url, json=profile), 404, "not_found")
    error(api.client.delete(url), 404, "not_found")


def test_an_unknown_voice_is_a_422_naming_the_speaker(api: Api) -> None:
    ada, bo = NEW["speaker"]["speakers"]
    profile = {**NEW["speaker"], "speakers": [ada, {**bo, "voice": "klingon"}]}
    body = error(api.client.post("/api/podcast/speaker-profiles", json=profile), 422, "validation_error")
    assert body["message"].startswith("speakers[1].voice: unknown espeak-ng voice 'klingon'")
    replaced = api.client.put("/api/podcast/speaker-profiles/solo", json=profile | {"name": "solo"})
    assert error(replaced, 422, "validation_error")["details"][0]["field"] == "speakers[1].voice"


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("episode", {"num_segments": 13}, "num_segments"),
        ("episode", {"name": "Not A Name"}, "name"),
        ("speaker", {"speakers": []}, "speakers"),
        ("speaker", {"speakers": [{"name": "A", "voice": "en-us"}]}, "speakers[0].personality"),
    ],
)
def test_an_invalid_profile_is_a_422_naming_the_field(api: Api, kind: str, change: dict, field: str) -> None:
    body = error(api.client.post(f"/api/podcast/{kind}-profiles", json=NEW[kind] | change), 422, "validation_error")
    assert body["details"][0]["field"] == field
