"""Sources over HTTP: JSON or multipart upload (stored once), list, get, delete, limits."""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from tests.api.conftest import Api, error, serve, settings_for

HTML = b"<html><head><title>Notes</title></head><body><h1>Hi</h1><p>Podcasts are long jobs.</p></body></html>"


def test_a_json_source_is_created_once_and_the_same_text_again_is_the_existing_one(api: Api) -> None:
    body = {"content": "# Queues\nDramatiq moves messages.", "content_type": "text/markdown"}
    first = api.client.post("/api/sources", json=body)
    assert first.status_code == 201
    created = first.json()
    assert created["created"] is True and created["title"] == "Queues" and created["content_type"] == "text/markdown"
    again = api.client.post("/api/sources", json={**body, "title": "another title"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["source_id"] == created["source_id"]


def test_a_file_is_uploaded_as_multipart_with_its_type_from_the_extension(api: Api) -> None:
    response = api.client.post("/api/sources", files={"file": ("notes.html", HTML, "application/octet-stream")})
    assert response.status_code == 201, response.text
    source = response.json()
    assert (source["filename"], source["content_type"], source["title"]) == ("notes.html", "text/html", "Notes")
    assert source["byte_size"] == len(HTML)
    titled = api.client.post(
        "/api/sources", files={"file": ("a.txt", b"Plain words here.", "text/plain")}, data={"title": "Mine"}
    )
    assert titled.status_code == 201 and titled.json()["title"] == "Mine"
    stored = api.client.get(f"/api/sources/{source['source_id']}").json()
    assert "Podcasts are long jobs." in stored["text"] and "<p>" not in stored["text"]


def test_empty_binary_or_untyped_content_is_a_422_naming_the_field(api: Api) -> None:
    cases = [
        ({"json": {"content": "   "}}, "content"),
        ({"json": {"content": "x", "content_type": "image/png"}}, "content_type"),
        ({"json": {"content": ""}}, "content"),
        ({"json": {"text": "x"}}, "content"),
        ({"files": {"file": ("blob.txt", b"\x00\x01\x02binary", "text/plain")}}, "file"),
        ({"files": {"file": ("photo.png", b"abc", "application/octet-stream")}}, "filename"),
        ({"files": {"other": ("a.txt", b"abc", "text/plain")}}, "file"),
        ({"content": b"--x\r\n1--x--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, "body"),
    ]
    for kwargs, field in cases:
        body = error(api.client.post("/api/sources", **kwargs), 422, "validation_error")
        assert body["details"][0]["field"] == field, (kwargs, body)


def test_an_upload_over_the_source_limit_is_a_413(tmp_path: Path, redis_url: str) -> None:
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url, max_source_bytes=1000))) as api:
        just_over = api.client.post("/api/sources", files={"file": ("a.txt", b"a" * 1001, "text/plain")})
        assert "PODFLOW_MAX_SOURCE_BYTES=1000" in error(just_over, 413, "payload_too_large")["message"]
        far_over = api.client.post("/api/sources", files={"file": ("a.txt", b"a" * 200_000, "text/plain")})
        error(far_over, 413, "payload_too_large")
        as_json = api.client.post("/api/sources", json={"content": "a" * 1001})
        assert error(as_json, 413, "payload_too_large")["details"][0]["field"] == "content"
        assert api.client.post("/api/sources", files={"file": ("a.txt", b"a" * 1000, "text/plain")}).status_code == 201


def test_sources_are_listed_newest_first_fetched_and_deleted(api: Api) -> None:
    first = api.source("First text.")
    second = api.source("Second text.")
    listed = api.client.get("/api/sources").json()["sources"]
    assert [s["source_id"] for s in listed][:2] == [second, first] and "text" not in listed[0]
    assert [s["source_id"] for s in api.client.get("/api/sources", params={"limit": 1}).json()["sources"]] == [second]
    error(api.client.get("/api/sources", params={"limit": 0}), 422, "validation_error")
    assert api.client.get(f"/api/sources/{first}").json()["text"] == "First text."
    assert api.client.delete(f"/api/sources/{first}").status_code == 204
    error(api.client.get(f"/api/sources/{first}"), 404, "not_found")
    error(api.client.delete(f"/api/sources/{first}"), 404, "not_found")
