"""Checkpoints on disk: reuse or compute, crash-safe writes, first writer wins, origins, clean-up rules."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import pytest

from podflow.checkpoints import Checkpoints, disk_usage, is_removable, remove_checkpoints
from podflow.errors import LeaseLost
from podflow.generation.keys import input_key
from podflow.generation.wav import is_complete_clip
from podflow.models import Run
from podflow.paths import checkpoint_dir
from podflow.states import RunStatus
from tests.conftest import T0, at
from tests.execution import request

KEY = input_key("outline", {"sources": ["a"], "model": "m"})
CLIP = input_key("clip", {"voice": "alloy", "text": "Hello there."})


def wav(path: Path, seconds: float = 0.5, rate: int = 24000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setparams((1, 2, rate, 0, "NONE", "not compressed"))
        out.writeframes(b"\x01\x00" * int(seconds * rate))
    return path


def valid_clip(path: Path) -> bool:
    return is_complete_clip(path, chars=len("Hello there."))


class Counted:
    """A compute that says how often it ran."""

    def __init__(self, value: object) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_a_value_is_computed_once_and_reused_by_the_next_attempt(tmp_path: Path) -> None:
    counted, seen = Counted({"segments": [1, 2]}), []
    first = Checkpoints(root=tmp_path / "ck", on_count=lambda stage, outcome: seen.append((stage, outcome)))
    assert first.value(KEY, counted, stage="outline") == {"segments": [1, 2]}
    second = Checkpoints(root=tmp_path / "ck", on_count=lambda stage, outcome: seen.append((stage, outcome)))
    assert second.value(KEY, counted, stage="outline") == {"segments": [1, 2]}
    assert counted.calls == 1
    assert seen == [("outline", "computed"), ("outline", "reused")]
    assert (first.tally()["outline"].computed, second.tally()["outline"].reused) == (1, 1)
    assert [p.name for p in (tmp_path / "ck").iterdir()] == [f"{KEY}.json"]  # no partial file left


def test_encode_and_decode_turn_a_result_into_json_and_back(tmp_path: Path) -> None:
    store = Checkpoints(root=tmp_path)
    store.value(KEY, lambda: (1, 2), stage="outline", encode=list, decode=tuple)
    assert Checkpoints(root=tmp_path).value(KEY, lambda: (9,), stage="outline", encode=list, decode=tuple) == (1, 2)


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[:9]),  # torn
        lambda path: path.write_text(json.dumps({"key": "outline-other", "value": 1})),  # another key's
        lambda path: path.write_text(json.dumps({"key": KEY, "value": {"unexpected": True}})),  # decode refuses
    ],
    ids=["torn", "wrong-key", "undecodable"],
)
def test_a_damaged_value_is_recomputed_and_replaced(tmp_path: Path, damage: object) -> None:
    def decode(value: object) -> dict[str, object]:
        if not isinstance(value, dict) or "segments" not in value:
            raise ValueError("not an outline")
        return value

    Checkpoints(root=tmp_path).value(KEY, lambda: {"segments": 1}, stage="outline", decode=decode)
    damage(tmp_path / f"{KEY}.json")  # type: ignore[operator]
    again = Counted({"segments": 2})
    assert Checkpoints(root=tmp_path).value(KEY, again, stage="outline", decode=decode) == {"segments": 2}
    assert again.calls == 1
    assert Checkpoints(root=tmp_path).value(KEY, again, stage="outline", decode=decode) == {"segments": 2}
    assert again.calls == 1  # the replacement is reused


def test_a_partial_file_left_by_a_crash_is_never_taken_for_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / f".{KEY}.json.abc.partial").write_text(json.dumps({"key": KEY, "value": "half"}))
    counted = Counted("whole")
    assert Checkpoints(root=tmp_path).value(KEY, counted, stage="outline") == "whole" and counted.calls == 1


def test_a_clip_is_reused_through_a_link_of_the_attempts_own(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    made = Checkpoints(root=root).file(CLIP, tmp_path / "a1" / "turn.wav", wav, stage="audio", valid=valid_clip)
    stored = root / f"{CLIP}.wav"
    assert made.samefile(stored)  # kept by linking the file made, not by copying it

    calls: list[Path] = []
    dest = tmp_path / "a2" / "turn.wav"
    reused = Checkpoints(root=root).file(CLIP, dest, calls.append, stage="audio", valid=valid_clip)
    assert reused == dest and calls == [] and dest.samefile(stored)
    remove_checkpoints(tmp_path, "unused")  # a no-op for a run without checkpoints
    stored.unlink()  # what the sweep or a zombie's clean-up could do: the attempt still has its link
    assert valid_clip(dest)


def test_a_truncated_clip_is_detected_and_recomputed(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    Checkpoints(root=root).file(CLIP, tmp_path / "a1" / "turn.wav", wav, stage="audio", valid=valid_clip)
    stored = root / f"{CLIP}.wav"
    cut = stored.read_bytes()[: stored.stat().st_size // 2]
    stored.unlink()
    stored.write_bytes(cut)  # planted: a torn write the disk kept
    calls: list[Path] = []

    def make(path: Path) -> None:
        calls.append(path)
        wav(path)

    checkpoints = Checkpoints(root=root)
    dest = checkpoints.file(CLIP, tmp_path / "a2" / "turn.wav", make, stage="audio", valid=valid_clip)
    assert calls == [dest] and checkpoints.tally()["audio"].computed == 1
    assert valid_clip(stored) and stored.samefile(dest)  # the bad one was replaced


def test_the_first_valid_checkpoint_wins_and_is_never_overwritten(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    live = wav(tmp_path / "live.wav", seconds=0.5)
    Checkpoints(root=root).keep_file(CLIP, live, stage="audio", valid=valid_clip)
    zombie = wav(tmp_path / "zombie.wav", seconds=0.7)  # as valid, and different
    Checkpoints(root=root).keep_file(CLIP, zombie, stage="audio", valid=valid_clip)
    assert (root / f"{CLIP}.wav").samefile(live)


def test_a_fenced_attempt_writes_nothing(tmp_path: Path) -> None:
    def lost() -> None:
        raise LeaseLost("attempt 1 lost the run")

    checkpoints = Checkpoints(root=tmp_path / "ck", fence=lost)
    with pytest.raises(LeaseLost):
        checkpoints.keep_file(CLIP, wav(tmp_path / "made.wav"), stage="audio", valid=valid_clip)
    with pytest.raises(LeaseLost):
        checkpoints.value(KEY, lambda: 1, stage="outline")
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_a_retry_reuses_its_origins_checkpoints_and_links_them_into_its_own(tmp_path: Path) -> None:
    origin = checkpoint_dir(tmp_path, "run_" + "a" * 32)
    Checkpoints(root=origin).value(KEY, lambda: "outline", stage="outline")
    Checkpoints(root=origin).file(CLIP, tmp_path / "o" / "t.wav", wav, stage="audio", valid=valid_clip)
    before = sorted(p.name for p in origin.iterdir())

    own = checkpoint_dir(tmp_path, "run_" + "b" * 32)
    retry = Checkpoints(root=own, origins=[("run_" + "a" * 32, origin)])
    assert retry.value(KEY, lambda: "recomputed", stage="outline") == "outline"
    assert retry.reuse_file(CLIP, tmp_path / "r" / "t.wav", stage="audio", valid=valid_clip)
    assert not retry.reuse_file(input_key("clip", {"text": "new"}), tmp_path / "r" / "u.wav", stage="audio")
    tally = retry.tally()
    assert (tally["outline"].reused, tally["outline"].inherited, tally["audio"].inherited) == (1, 1, 1)
    assert sorted(p.name for p in origin.iterdir()) == before  # read only
    assert sorted(p.name for p in own.iterdir()) == before  # the retry no longer needs the origin
    remove_checkpoints(tmp_path, "run_" + "a" * 32)
    assert Checkpoints(root=own).value(KEY, lambda: "recomputed", stage="outline") == "outline"


def test_without_a_directory_everything_is_computed_and_counted(tmp_path: Path) -> None:
    checkpoints = Checkpoints(root=None)
    assert checkpoints.value(KEY, lambda: 1, stage="outline") == 1
    dest = checkpoints.file(CLIP, tmp_path / "t.wav", wav, stage="audio")
    assert dest.is_file() and not checkpoints.reuse_file(CLIP, tmp_path / "u.wav", stage="audio")
    assert {s: t.computed for s, t in checkpoints.tally().items()} == {"outline": 1, "audio": 1}


@pytest.mark.parametrize(("key", "stage"), [("../escape", "audio"), (".hidden", "audio"), (KEY, "Audio Stage")])
def test_a_key_or_stage_that_is_not_a_safe_word_is_refused(tmp_path: Path, key: str, stage: str) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoints(root=tmp_path).value(key, lambda: 1, stage=stage)


def test_a_clip_must_be_complete_and_plausibly_long(tmp_path: Path) -> None:
    good = wav(tmp_path / "good.wav", seconds=1.0)
    assert is_complete_clip(good, chars=20)
    assert not is_complete_clip(good, chars=1000)  # 1000 characters in a second: cut short
    assert not is_complete_clip(wav(tmp_path / "blip.wav", seconds=0.01), chars=1)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:-100])
    assert not is_complete_clip(truncated, chars=20)
    patched = bytearray(truncated.read_bytes())  # a RIFF size made to match: the data chunk still lies
    patched[4:8] = (len(patched) - 8).to_bytes(4, "little")
    (tmp_path / "patched.wav").write_bytes(bytes(patched))
    assert not is_complete_clip(tmp_path / "patched.wav", chars=20)
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as out:
        out.setparams((2, 2, 24000, 0, "NONE", "not compressed"))
        out.writeframes(b"\x00\x00" * 2 * 24000)
    assert not is_complete_clip(stereo, chars=20)
    (tmp_path / "text.wav").write_text("not audio")
    assert not is_complete_clip(tmp_path / "text.wav", chars=5)
    assert not is_complete_clip(tmp_path / "absent.wav", chars=5)


def _run(status: RunStatus, finished_s: float | None) -> Run:
    run = Run.new(request(), now=T0)
    finished = None if finished_s is None else at(finished_s)
    return run.model_copy(update={"status": status, "finished_at": finished, "updated_at": finished or T0})


@pytest.mark.parametrize(
    ("run", "removable"),
    [
        (None, True),  # deleted
        (_run(RunStatus.SUCCESS, 99), True),  # left by a crash after the finish
        (_run(RunStatus.FAILURE, 0), True),  # past the TTL
        (_run(RunStatus.REVOKED, 0), True),
        (_run(RunStatus.FAILURE, 50), False),  # a retry may still use them
        (_run(RunStatus.STARTED, None), False),
        (_run(RunStatus.PENDING, None), False),
    ],
)
def test_checkpoints_go_once_no_retry_can_use_them(run: Run | None, removable: bool) -> None:
    assert is_removable(run, now=at(100), ttl_s=60) is removable


def test_disk_usage_counts_runs_files_and_bytes(tmp_path: Path) -> None:
    assert disk_usage(tmp_path).as_dict() == {"path": str(tmp_path / "checkpoints"), "runs": 0, "files": 0, "bytes": 0}
    for name in ("a", "b"):
        Checkpoints(root=checkpoint_dir(tmp_path, "run_" + name * 32)).value(KEY, lambda: "x" * 100, stage="outline")
    usage = disk_usage(tmp_path)
    size = os.path.getsize(checkpoint_dir(tmp_path, "run_" + "a" * 32) / f"{KEY}.json")
    assert (usage.runs, usage.files, usage.bytes) == (2, 2, 2 * size)
    assert remove_checkpoints(tmp_path, "run_" + "a" * 32) and disk_usage(tmp_path).runs == 1
