"""The outline: segments, titles and key sentences extracted from the sources."""

from __future__ import annotations

import json

import pytest

from podflow.errors import GenerationError
from podflow.generation.outline import build_outline
from podflow.generation.text import split_sentences, words
from podflow.sources import source_prose
from tests.generation.conftest import NOTES, generation_request, make_source


def all_sentences(*texts: str) -> list[str]:
    return [s for text in texts for p in text.split("\n\n") for s in split_sentences(p)]


def test_sections_become_segments_titled_by_their_headings() -> None:
    outline = build_outline(generation_request(num_segments=3))
    assert [s.title for s in outline.segments] == [
        "Reusable boosters",
        "River cleanup",
        "Solid-state batteries",
    ]
    assert [s.index for s in outline.segments] == [1, 2, 3]
    assert outline.requested_segments == 3


def test_more_sections_than_segments_are_merged_in_order() -> None:
    outline = build_outline(generation_request(num_segments=2))
    assert [s.title for s in outline.segments] == [
        "Reusable boosters",
        "River cleanup and Solid-state batteries",
    ]


def test_fewer_sections_than_segments_are_split_into_parts() -> None:
    outline = build_outline(generation_request(num_segments=5))
    assert [s.title for s in outline.segments] == [
        "Reusable boosters (part 1)",
        "Reusable boosters (part 2)",
        "River cleanup (part 1)",
        "River cleanup (part 2)",
        "Solid-state batteries",
    ]


def test_key_points_are_source_sentences_in_source_order_within_the_word_budget() -> None:
    source = make_source()
    outline = build_outline(generation_request(sources=[source], num_segments=1, words_per_segment=40))
    (segment,) = outline.segments
    sentences = all_sentences(source_prose(source))
    positions = [sentences.index(point) for point in segment.key_points]
    assert positions == sorted(positions)
    count = sum(len(words(p)) for p in segment.key_points)
    assert 32 <= count < 32 + max(len(words(s)) for s in sentences)  # 80% of 40, plus one sentence at most


def test_segments_remember_their_sources() -> None:
    article, notes = make_source(), make_source(NOTES, filename="market.txt")
    outline = build_outline(generation_request(sources=[article, notes], num_segments=4))
    assert outline.segments[-1].source_ids == (notes.source_id,)
    assert outline.segments[-1].title == "Weekend market report"
    assert outline.segments[0].source_ids == (article.source_id,)


def test_the_briefing_steers_which_sentences_are_picked() -> None:
    plain = build_outline(generation_request(num_segments=1, words_per_segment=20))
    focused = build_outline(
        generation_request(num_segments=1, words_per_segment=20, briefing_suffix="Say what the schools did.")
    )
    assert not any("schools" in p for p in plain.segments[0].key_points)
    assert any("schools" in p for p in focused.segments[0].key_points)


def test_a_short_source_gives_one_segment_per_sentence_rather_than_repeats() -> None:
    outline = build_outline(generation_request(sources=[make_source("One fact. Another fact.", "f.txt")]))
    assert outline.requested_segments == 4
    assert [s.key_points for s in outline.segments] == [("One fact.",), ("Another fact.",)]


def test_sources_without_text_are_a_generation_error() -> None:
    empty = make_source("x").model_copy(
        update={"text": "```\ncode only\n```", "content_type": "text/markdown"}
    )
    with pytest.raises(GenerationError, match="no text"):
        build_outline(generation_request(sources=[empty]))


def test_the_outline_is_deterministic_and_json_ready() -> None:
    request = generation_request(sources=[make_source(), make_source(NOTES, filename="m.txt")])
    first, second = build_outline(request), build_outline(request)
    assert first == second
    data = json.loads(json.dumps(first.to_json()))
    assert data["segments"][0]["key_points"] == list(first.segments[0].key_points)
    assert data["segments"][0]["word_count"] == sum(len(words(p)) for p in first.segments[0].key_points)
