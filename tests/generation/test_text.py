"""Sentences, sections and words for the built-in generator."""

from __future__ import annotations

from podflow.generation.text import content_words, join_words, sections, split_sentences
from tests.generation.conftest import make_source


def test_sentences_end_at_punctuation_not_at_abbreviations_or_initials() -> None:
    text = 'Dr. Smith met J. R. Tolkien at 5 p.m. on Friday. It was fun! Was it? "Yes." U.S. policy changed'
    assert split_sentences(text) == [
        "Dr. Smith met J. R. Tolkien at 5 p.m. on Friday.",
        "It was fun!",
        "Was it?",
        '"Yes."',
        "U.S. policy changed",
    ]


def test_a_line_ending_in_punctuation_ends_a_sentence_and_other_breaks_are_wraps() -> None:
    assert split_sentences("first item.\nsecond item.\na soft\nwrap here.") == [
        "first item.",
        "second item.",
        "a soft wrap here.",
    ]


def test_sections_follow_the_headings_of_the_source() -> None:
    found = sections(make_source())
    assert [s.title for s in found] == ["Reusable boosters", "River cleanup", "Solid-state batteries"]
    assert (
        found[1].sentences[0] == "Volunteers removed two tons of plastic from the river over three weekends."
    )


def test_text_before_any_heading_goes_under_the_source_title() -> None:
    found = sections(make_source("Plain words here. And more words.", filename="memo.txt"))
    assert [(s.title, len(s.sentences)) for s in found] == [("memo", 2)]


def test_a_source_of_headings_only_still_has_a_section() -> None:
    found = sections(make_source("just a title\n\nanother line", filename="t.txt"))
    assert [s.sentences for s in found] == [("just a title", "another line")]


def test_content_words_skip_stop_words_numbers_and_letters() -> None:
    assert content_words("The 3 rockets of a fleet, it\u2019s said, fly x times") == [
        "rockets",
        "fleet",
        "it\u2019s",
        "fly",
        "times",
    ]


def test_join_words_reads_as_a_list() -> None:
    assert [join_words(x) for x in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == [
        "",
        "a",
        "a and b",
        "a, b and c",
    ]
    assert join_words("abcdef", most=3) == "a, b and others"
