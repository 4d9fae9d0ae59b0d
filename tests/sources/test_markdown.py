"""HTML and Markdown reduced to prose."""

from __future__ import annotations

from podflow.sources.html import html_to_text, markdown_title, markdown_to_text


def test_html_keeps_headings_and_paragraphs_and_drops_scripts_and_styles() -> None:
    page = html_to_text(
        "<html><head><title>Launch &amp; Landing</title><style>p { color: red }</style></head>"
        "<body><script>alert('no')</script><h1>Mission report</h1>"
        "<p>The rocket launched at dawn.<br>It landed at noon.</p>"
        "<div>Crew: <b>three</b> astronauts</div><noscript>enable js</noscript></body></html>"
    )
    assert page.text == (
        "Mission report\n\nThe rocket launched at dawn. It landed at noon.\n\nCrew: three astronauts"
    )
    assert page.title == "Launch & Landing"


def test_html_entities_are_unescaped_and_list_items_become_sentences() -> None:
    page = html_to_text(
        "<h2>Caf&eacute; &lt;menu&gt;</h2><ul><li>Tea</li><li>Coffee!</li></ul><p>&#169; 2026</p>"
    )
    assert page.text == "Café <menu>\n\nTea.\nCoffee!\n\n© 2026"
    assert page.title == "Café <menu>"


def test_html_without_title_or_heading_has_no_title() -> None:
    assert html_to_text("<p>just text</p>").title is None


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
