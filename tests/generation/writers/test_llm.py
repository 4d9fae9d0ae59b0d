"""The LLM writer against the fake provider: strict schemas, validation, re-asks, budgets, languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from podflow.generation.context import LocalContext
from podflow.generation.providers import ProviderRejected, UnusableReply
from podflow.generation.writers import OutlineJob, TranscriptJob
from podflow.generation.writers.llm import LLMWriter
from podflow.generation.writers.llm.prompts import condense
from podflow.generation.writers.llm.schema import Counts, outline_schema, transcript_schema
from tests.fake_provider import FakeProvider, Reply, schema_instance
from tests.generation.conftest import ConfigFactory, generation_request, make_source


def assert_strict(schema: dict[str, Any], where: str = "$") -> None:
    """Structured output's strict rules: every object closed, with all its properties required."""
    if schema.get("type") == "object":
        assert schema["additionalProperties"] is False, where
        assert sorted(schema["required"]) == sorted(schema["properties"]), where
        for key, sub in schema["properties"].items():
            assert_strict(sub, f"{where}.{key}")
    elif schema.get("type") == "array":
        assert_strict(schema["items"], f"{where}[]")
    assert not {"minLength", "maxLength", "default", "format"} & set(schema), where


def test_the_schemas_follow_the_strict_rules_with_counts_and_a_speaker_enum() -> None:
    request = generation_request(speakers="panel")
    counts = Counts.of(request.episode_profile, ("Morgan", "Priya", "Leo"))
    outline = outline_schema(counts, ["src_a", "src_b"])
    transcript = transcript_schema(counts)
    assert_strict(outline) and assert_strict(transcript)  # type: ignore[func-returns-value]
    segments = outline["properties"]["segments"]
    assert segments["minItems"] == segments["maxItems"] == 4  # tech_news
    assert segments["items"]["properties"]["sources"]["items"]["enum"] == ["src_a", "src_b"]
    turn = transcript["properties"]["intro"]["items"]
    assert turn["properties"]["speaker"]["enum"] == ["Morgan", "Priya", "Leo"]
    turns = transcript["properties"]["segments"]["items"]["properties"]["turns"]
    assert (turns["minItems"], turns["maxItems"]) == (counts.segment_turns[0], counts.segment_turns[1])
    assert counts.target_turns == 3  # 120 words per segment, about 35 words a turn


def write(
    configs: ConfigFactory, tmp_path: Path, config: dict[str, Any] | None = None, **request: Any
) -> tuple[LocalContext, Any, Any]:
    config = configs(tts="none", **(config or {}))
    assert config.llm_provider is not None
    writer = LLMWriter(provider=config.llm_provider, reasks=config.llm_reasks, source_chars=config.llm_source_chars)
    req = generation_request(**request)
    ctx = LocalContext(run_id=req.run_id, work_dir=tmp_path, config=config)
    job = OutlineJob.of(req, writer=writer.name, model=writer.model_for(req.episode_profile))
    outline = writer.outline(job, ctx, percent=0)
    transcript = writer.transcript(TranscriptJob(job, outline, req.speaker_profile), ctx, percent=10)
    return ctx, outline, transcript


def bodies(fake: FakeProvider) -> list[dict[str, Any]]:
    return [call.body for call in fake.calls("chat")]


def test_an_outline_and_a_transcript_in_two_structured_completions(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    source = make_source()
    ctx, outline, transcript = write(configs, tmp_path, speakers="dual_host", sources=[source])
    outline_call, transcript_call = bodies(fake)
    for body, name in ((outline_call, "outline"), (transcript_call, "transcript")):
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["name"] == name and body["model"] == "fake-model"
    assert len(outline.segments) == 4 and outline.segments[0].title.startswith("Fake title")
    assert outline.segments[0].source_ids == (source.source_id,)
    assert {t.speaker for t in transcript.turns} == {"Alex", "Jordan"}
    assert transcript.turns[0].part == "intro" and transcript.turns[-1].part == "outro"
    assert {t.segment for t in transcript.turns if t.part == "segment"} == {1, 2, 3, 4}
    prompt = transcript_call["messages"][1]["content"]
    assert "Only these speakers talk (Alex hosts; with Jordan)" in prompt and "Fake title" in prompt
    assert "Write every title, point and line in English (en)" in transcript_call["messages"][0]["content"]
    assert any("asking fake-model for 4 segment(s)" in e.message for e in ctx.events)


def test_the_profiles_model_language_briefing_and_suffix_reach_the_prompt(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    write(configs, tmp_path, briefing_suffix="Mind the schools.", llm_model="qwen2.5:7b", language="zh-CN")
    outline_call, transcript_call = bodies(fake)
    assert outline_call["model"] == transcript_call["model"] == "qwen2.5:7b"
    system, user = outline_call["messages"]
    assert "Chinese (zh-CN)" in system["content"] and "Mind the schools." in user["content"]
    assert "about 120 characters" in user["content"]  # in Chinese a word is a character


def test_an_unusable_reply_is_asked_again_with_the_problem(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(content="not json at all"))
    ctx, outline, _ = write(configs, tmp_path, num_segments=1)
    first, again, _ = bodies(fake)
    assert len(again["messages"]) == len(first["messages"]) + 2
    assert again["messages"][-2] == {"role": "assistant", "content": "not json at all"}
    assert again["messages"][-1]["content"].startswith("That reply cannot be used: reply: Invalid JSON")
    assert any("the outline reply was unusable" in e.message and "(2 of 3)" in e.message for e in ctx.events)
    assert len(outline.segments) == 1


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (
            {"intro": [{"speaker": "Bob", "text": "Hi."}]},
            "intro.0.speaker: unknown speaker 'Bob'; the speakers are Alex, Jordan",
        ),
        ({"intro": [{"speaker": "Alex", "text": "  "}]}, "intro.0.text: String should have at least 1 character"),
        ({"segments": []}, "segments: 0 segments; the schema asks for 1"),
    ],
)
def test_a_reply_that_fails_every_time_fails_the_run_quoting_the_problem(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path, reply: dict[str, Any], problem: str
) -> None:
    counts = Counts.of(generation_request(num_segments=1).episode_profile, ("Alex", "Jordan"))
    bad = {**schema_instance(transcript_schema(counts)), **reply}
    fake.script("chat", Reply(), *[Reply(content=bad)] * 3)  # a good outline, then three bad transcripts
    with pytest.raises(UnusableReply) as err:
        write(configs, tmp_path, num_segments=1)
    assert f"gave no usable transcript in 3 replies; the last one: {problem}" in str(err.value)
    assert len(fake.calls("chat")) == 4


def test_a_reply_cut_off_at_the_output_limit_is_asked_again(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(content='{"segments": [', finish_reason="length"))
    write(configs, tmp_path, num_segments=1)
    assert "cut off at the model's output limit" in bodies(fake)[1]["messages"][-1]["content"]


def test_length_targets_are_guidance_never_grounds_to_reject(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    # the fake's turns are three words long, far from 120 words a segment: accepted as they are
    _, _, transcript = write(configs, tmp_path, num_segments=1)
    assert len(fake.calls("chat")) == 2 and transcript.word_count < 60


def test_a_refusal_of_the_request_fails_at_once_naming_the_setting(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(status=404))
    with pytest.raises(ProviderRejected, match="404 for model 'fake-model': check PODFLOW_LLM_MODEL"):
        write(configs, tmp_path)
    assert len(fake.calls("chat")) == 1


def test_a_refusal_names_the_profiles_model_when_it_overrides_the_setting(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    fake.script("chat", Reply(status=404))
    with pytest.raises(ProviderRejected, match="404 for model 'profile-llm': check PODFLOW_LLM_MODEL") as refused:
        write(configs, tmp_path, llm_model="profile-llm")
    assert "fake-model" not in str(refused.value)  # PODFLOW_LLM_MODEL: not the model called
    assert [body["model"] for body in bodies(fake)] == ["profile-llm"]


def test_long_sources_are_truncated_to_the_budget_at_a_sentence_and_progress_says_so(
    fake: FakeProvider, configs: ConfigFactory, tmp_path: Path
) -> None:
    long = make_source("# Long\n\n" + " ".join(f"Sentence number {i} is here." for i in range(2000)), "long.md")
    short = make_source("# Short\n\nA short note.", "short.md")
    material = condense((long, short), budget_chars=3000)
    assert material.sent_chars <= 3000 and material.truncated
    (_, long_text), (_, short_text) = material.texts
    assert short_text == "Short\n\nA short note." or short_text.endswith("A short note.")  # sent whole
    assert long_text.endswith("is here. […]")
    assert material.note() == (
        f"sources truncated to {material.sent_chars:,} of {material.total_chars:,} characters "
        "(PODFLOW_LLM_SOURCE_CHARS=3,000)"
    )

    ctx, _, _ = write(configs, tmp_path, {"llm_source_chars": 3000}, sources=[long, short], num_segments=1)
    outline_call = bodies(fake)[0]
    assert len(outline_call["messages"][1]["content"]) < len(long.text)
    assert any("sources truncated to" in e.message for e in ctx.events)


def test_the_transcript_file_keeps_its_shape(fake: FakeProvider, configs: ConfigFactory, tmp_path: Path) -> None:
    _, _, transcript = write(configs, tmp_path, num_segments=1)
    data = json.loads(json.dumps(transcript.to_json()))
    assert set(data["turns"][0]) == {"index", "speaker", "part", "segment", "text"}
