"""A run's files: audio with HTTP Range, transcript and outline; 404 until ready."""

from __future__ import annotations

import json
import subprocess
import wave
from io import BytesIO
from pathlib import Path

import pytest

from api.app import create_app
from podflow.models import RunResult
from podflow.states import RunStatus
from podflow.timeutil import utcnow
from tests.api.conftest import ABSENT, Api, error, finish_with_files, serve, settings_for
from tests.execution import wait_for


@pytest.mark.parametrize("name", ["audio", "transcript", "outline"])
def test_a_file_is_a_404_until_the_run_has_succeeded_with_it(api: Api, name: str) -> None:
    run_id = api.submit()["run_id"]
    assert "PENDING" in error(api.client.get(f"/api/podcast/runs/{run_id}/{name}"), 404, "not_found")["message"]
    finish_with_files(api, run_id)  # SUCCESS, without files
    assert "produced none" in error(api.client.get(f"/api/podcast/runs/{run_id}/{name}"), 404, "not_found")["message"]
    error(api.client.get(f"/api/podcast/runs/{ABSENT}/{name}"), 404, "not_found")


def test_the_audio_is_a_wav_served_whole_or_by_range(api: Api) -> None:
    run_id = api.submit()["run_id"]
    finish_with_files(api, run_id, audio="")
    url = f"/api/podcast/runs/{run_id}/audio"
    whole = api.client.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    with wave.open(BytesIO(whole.content)) as wav:
        assert wav.getnframes() == 8000
    size = len(whole.content)
    part = api.client.get(url, headers={"Range": "bytes=0-43"})
    assert part.status_code == 206 and part.content == whole.content[:44]
    assert part.headers["content-range"] == f"bytes 0-43/{size}"
    tail = api.client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]


def test_a_range_beyond_the_audio_is_a_416_and_a_malformed_one_a_400(api: Api) -> None:
    run_id = api.submit()["run_id"]
    finish_with_files(api, run_id, audio="")
    url = f"/api/podcast/runs/{run_id}/audio"
    size = len(api.client.get(url).content)
    beyond = api.client.get(url, headers={"Range": f"bytes={size}-"})
    error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{size}"
    error(api.client.get(url, headers={"Range": "pages=1-2"}), 400, "invalid_range")


def test_the_transcript_and_outline_are_served_as_json(api: Api) -> None:
    run_id = api.submit()["run_id"]
    finish_with_files(api, run_id, transcript='{"turns": []}', outline='{"segments": [1]}')
    transcript = api.client.get(f"/api/podcast/runs/{run_id}/transcript")
    assert transcript.headers["content-type"] == "application/json" and transcript.json() == {"turns": []}
    assert api.client.get(f"/api/podcast/runs/{run_id}/outline").json() == {"segments": [1]}


def test_a_recorded_path_outside_the_data_dir_is_never_served(api: Api) -> None:
    run_id = api.submit()["run_id"]
    secret = api.settings.data_dir.parent / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    attempt = api.store.claim(run_id, now=utcnow())
    result = RunResult(transcript_path="../secret.json", outline_path=str(secret))
    api.store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=utcnow(), result=result)
    for name in ("transcript", "outline"):
        error(api.client.get(f"/api/podcast/runs/{run_id}/{name}"), 404, "not_found")


@pytest.mark.slow
@pytest.mark.parametrize(("audio_format", "media_type"), [("mp3", "audio/mpeg"), ("wav", "audio/wav")])
def test_an_episode_made_by_the_built_in_generator_is_served(
    tmp_path: Path, audio_format: str, media_type: str
) -> None:
    settings = settings_for(tmp_path, mode="thread", audio_format=audio_format)
    with serve(create_app(settings)) as api:  # espeak-ng and ffmpeg, for real
        request = api.request(episode_profile="quick_brief", speaker_profile="solo", episode_name="Queues")
        run_id = api.client.post("/api/podcast/generate", json=request).json()["run_id"]
        done = wait_for(
            lambda: (r := api.client.get(f"/api/podcast/runs/{run_id}").json())["finished_at"] and r,
            what="the episode",
        )
        assert done["status"] == "SUCCESS", done["error"]
        whole = api.client.get(done["result"]["audio_url"])
        assert whole.headers["content-type"] == media_type and whole.headers["accept-ranges"] == "bytes"
        audio = api.client.get(done["result"]["audio_url"], headers={"Range": "bytes=0-11"})
        assert audio.status_code == 206 and audio.headers["content-type"] == media_type
        assert audio.content == whole.content[:12]
        assert audio.headers["content-range"] == f"bytes 0-11/{len(whole.content)}"
        if audio_format == "wav":
            assert audio.content[:4] == b"RIFF" and audio.content[8:12] == b"WAVE"
        else:
            assert audio.content[:3] == b"ID3"  # ffmpeg's MP3, its LAME header in the first frame
            # duration_s is the joined PCM's: a gapless decoder gets it back to a few samples
            assert decoded_seconds(whole.content, tmp_path) == pytest.approx(done["result"]["duration_s"], abs=0.005)
        transcript = api.client.get(done["result"]["transcript_url"]).json()
        assert {turn["speaker"] for turn in transcript["turns"]} == {"Sam"}


def decoded_seconds(mp3: bytes, tmp_path: Path) -> float:
    """What a gapless decoder (ffmpeg, from a file: it reads the LAME header) makes of ``mp3``."""
    path = tmp_path / "decoded.mp3"
    path.write_bytes(mp3)
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "22050", "pipe:1"]
    pcm = subprocess.run(command, capture_output=True, check=True).stdout
    return len(pcm) / 2 / 22050
