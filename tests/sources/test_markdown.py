"""Markdown reduced to prose by a CommonMark parser, with CommonMark's tricky cases."""

from __future__ import annotations

import pytest

from podflow.sources import markdown_title, markdown_to_text
from podflow.sources.markdown import markdown_prose


def test_markdown_loses_its_markup_but_keeps_its_words() -> None:
    text = markdown_to_text(
        "---\nlayout: post\n---\n"
        "# The *Big* News\n\n"
        "Some **bold** words, a [link](https://example.org) and `inline code`;\n"
        "snake_case_names stay.\n\n"
        "- first item\n- [x] second item!\n\n"
        "```python\nprint('code is not prose')\n```\n\n"
        "| name | role |\n|------|------|\n| Ada | engineer |\n\n"
        "> a quote\n\n***\n\n[ref]: https://example.org\n"
        "![a diagram](d.png) follows.\n"
    )
    assert text == (
        "The Big News\n\n"
        "Some bold words, a link and inline code; snake_case_names stay.\n\n"
        "first item.\nsecond item!\n\n"
        "name, role.\nAda, engineer.\n\n"
        "a quote\n\n"
        "a diagram follows."
    )


def test_markdown_title_is_the_first_atx_or_setext_heading() -> None:
    assert markdown_title("intro\n\n## Second *level*\n\n# First") == "Second level"
    assert markdown_title("Underlined\n==========\n\ntext") == "Underlined"
    assert markdown_title("```\n# not a heading\n```\nplain") is None


@pytest.mark.parametrize(
    ("markdown", "prose"),
    [
        pytest.param("Intro.\n\n    def f():\n        return 1", "Intro.", id="indented code is dropped"),
        pytest.param("Para\n    still para", "Para still para", id="an indented line continuing a paragraph is prose"),
        pytest.param(
            "````\n```\nnot closed\n```\n````\nafter\n\n~~~ python\nx = 1\n~~~",
            "after",
            id="fenced code of either fence, holding a shorter fence, is dropped",
        ),
        pytest.param(
            "- an item\nthat goes on\n- next",
            "an item that goes on.\nnext.",
            id="a lazy continuation line stays in its list item",
        ),
        pytest.param("> quoted\ncontinued", "quoted continued", id="a lazy continuation line stays in its quote"),
        pytest.param(
            "1. one\n   - a\n   - b\n2. two\n\nafter",
            "one.\na.\nb.\ntwo.\n\nafter",
            id="nested items follow their parent, one line each",
        ),
        pytest.param(
            "- first\n\n  more about first\n- second",
            "first. more about first.\nsecond.",
            id="an item's second paragraph stays in the item",
        ),
        pytest.param("- item\n\n      code in item\n- other", "item.\nother.", id="code inside an item is dropped"),
        pytest.param("- a\n- b\n\n+ c", "a.\nb.\n\nc.", id="another bullet character starts another list"),
        pytest.param(
            "Title\n=====\n\nSub\n---\n\ntext\n\n---\n\nend",
            "Title\n\nSub\n\ntext\n\nend",
            id="setext headings, and --- after a blank line is a rule",
        ),
        pytest.param(
            "<div>\n<p>Hello <b>there</b></p>\n</div>\n\n<script>\nalert(1)\n</script>\n\n<!-- a note -->\n\nafter",
            "Hello there\n\nafter",
            id="HTML blocks are reduced like HTML: scripts and comments dropped",
        ),
        pytest.param(
            "[the docs][d] and [d], [inline](http://y)\n\n[d]: https://x\n  'a title'",
            "the docs and d, inline",
            id="reference links keep their text; definitions with titles are dropped",
        ),
        pytest.param("\\*not em\\* &amp; &copy; `a*b`", "*not em* & © a*b", id="escapes, entities and code spans"),
        pytest.param("Line one  \nline two\\\nline three", "Line one line two line three", id="hard line breaks"),
        pytest.param("* [ ] todo\n* [x] done", "todo.\ndone.", id="task boxes are dropped"),
    ],
)
def test_commonmark_tricky_cases(markdown: str, prose: str) -> None:
    assert markdown_to_text(markdown) == prose


def test_a_heading_inside_code_is_no_title() -> None:
    assert markdown_title("para\n\n    # code\n") is None
    assert markdown_title("~~~\n# code\n~~~\n\nSetext\n---") == "Setext"


def test_the_prose_and_the_title_come_from_one_parse() -> None:
    document = "Notes\n=====\n\n- one\n- two"
    assert markdown_prose(document) == (markdown_to_text(document), markdown_title(document)) == (
        "Notes\n\none.\ntwo.",
        "Notes",
    )
