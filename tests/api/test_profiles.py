"""Episode and speaker profiles over HTTP: the bundled ones, create, get, replace, delete, voice checks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, error
from tests.test_profiles import store_as_an_older_version_did

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


def one_speaker(**fields: str) -> dict[str, Any]:
    return {"speakers": [{"name": "Ada", "voice": "en-us", "personality": "Calm."} | fields]}


@pytest.mark.parametrize("blank", [" ", "\t\n", "\u3000"])
@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("speaker", lambda b: one_speaker(personality=b), "speakers[0].personality"),
        ("speaker", lambda b: one_speaker(name=b), "speakers[0].name"),
        ("episode", lambda b: {"name": b}, "name"),
    ],
)
def test_whitespace_only_text_is_refused_naming_the_field_and_nothing_is_stored(
    api: Api, kind: str, change: Any, field: str, blank: str
) -> None:
    base = f"/api/podcast/{kind}-profiles"
    body = error(api.client.post(base, json=NEW[kind] | change(blank)), 422, "validation_error")
    assert body["details"][0]["field"] == field and body["message"].startswith(f"{field}: ")
    if field != "name":  # (a name must match its pattern, which the message shows)
        assert body["details"][0]["message"] == "must not be empty or only whitespace"
    assert api.client.get(base).status_code == 200
    error(api.client.get(f"{base}/{NEW[kind]['name']}"), 404, "not_found")


def test_text_is_stored_stripped_and_reads_back(api: Api) -> None:
    padded = {"name": " duo ", "description": "  Two.  ", "speakers": [
        {"name": " Ada ", "voice": " en-us ", "personality": "\u3000Curious.\t"},
    ]}
    created = api.client.post("/api/podcast/speaker-profiles", json=padded)
    assert created.status_code == 201, created.text
    expected = {"name": "duo", "description": "Two.", "tts_model": None, "speakers": [
        {"name": "Ada", "voice": "en-us", "personality": "Curious."},
    ]}
    assert created.json() == expected
    assert api.client.get("/api/podcast/speaker-profiles/duo").json() == expected


@pytest.mark.parametrize("value", ["01_0", "1_00", "10", True, 1.5, 10.0, None])
def test_an_integer_field_takes_a_json_number_only(api: Api, value: Any) -> None:
    body = error(api.client.post("/api/podcast/episode-profiles", json=NEW["episode"] | {"num_segments": value}),
                 422, "validation_error")
    assert body["details"][0]["field"] == "num_segments"
    error(api.client.get("/api/podcast/episode-profiles/weekly"), 404, "not_found")  # nothing stored
    accepted = api.client.post("/api/podcast/episode-profiles", json=NEW["episode"] | {"num_segments": 10})
    assert accepted.status_code == 201


def test_a_profile_an_older_version_stored_is_a_409_naming_it_until_replaced(api: Api) -> None:
    store_as_an_older_version_did(api.store)
    for url in ("/api/podcast/speaker-profiles", "/api/podcast/speaker-profiles/blank"):
        body = error(api.client.get(url), 409, "unreadable_profile")
        assert body["message"].startswith("speaker profile 'blank' cannot be read: speakers[0].personality: ")
        assert body["details"]["name"] == "blank"
        assert body["details"]["problems"][0]["field"] == "speakers[0].personality"
    refused = error(api.client.post("/api/podcast/generate", json=api.request(speaker_profile="blank")),
                    422, "validation_error")
    assert refused["details"][0]["field"] == "speaker_profile"
    assert api.client.get("/api/podcast/speaker-profiles/solo").status_code == 200
    assert api.client.get("/api/podcast/episode-profiles").status_code == 200
    replaced = api.client.put("/api/podcast/speaker-profiles/blank", json=NEW["speaker"] | {"name": "blank"})
    assert replaced.status_code == 200
    assert "blank" in [p["name"] for p in api.client.get("/api/podcast/speaker-profiles").json()["profiles"]]
    assert api.client.post("/api/podcast/generate", json=api.request(speaker_profile="blank")).status_code == 202
