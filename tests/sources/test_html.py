"""HTML reduced to prose: headings, paragraphs and list items kept, scripts and styles dropped."""

from __future__ import annotations

from podflow.sources import html_to_text


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
