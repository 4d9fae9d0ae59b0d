"""HTML reduced to prose with the standard library's HTMLParser.

The text has the shape :mod:`podflow.sources.prose` describes: paragraphs,
headings, list items as sentences. Entities are unescaped; scripts, styles,
``<head>`` and the like are dropped: they are not prose anyone wants read
aloud. The Markdown converter reduces a document's HTML blocks here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from .prose import BlockKind, Blocks, collapse

__all__ = ["HtmlText", "html_into", "html_to_text"]

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html",
        "legend", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HtmlText:
    """An HTML document as prose, with its ``<title>`` or first heading."""

    text: str
    title: str | None


class _HtmlToText(HTMLParser):
    def __init__(self, blocks: Blocks) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive unescaped
        self.blocks = blocks
        self.title: str | None = None
        self._buffer: list[str] = []
        self._kind: BlockKind = "para"
        self._skip_depth = 0
        self._in_title = False
        self._title_parts: list[str] = []

    def _flush(self, next_kind: BlockKind = "para") -> None:
        self.blocks.add(self._kind, "".join(self._buffer))
        self._buffer = []
        self._kind = next_kind

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "br":
            self._buffer.append("\n")  # collapsed to a space; a break inside a paragraph
        elif tag in _HEADINGS:
            self._flush("heading")
        elif tag == "li":
            self._flush("item")
        elif tag in _BLOCKS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIP:  # <br/>, <hr/>: no depth to track
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in _HEADINGS or tag == "li" or tag in _BLOCKS:
            self._flush()
        if tag in ("ul", "ol", "table", "dl"):
            self.blocks.end_list()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._skip_depth:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        self.title = collapse("".join(self._title_parts)) or None


def html_to_text(markup: str) -> HtmlText:
    """Reduce an HTML document to prose (see the module docstring for the shape).

    Entities are unescaped; ``script``, ``style``, ``head`` and the like are
    dropped; the title is the ``<title>``, else the first ``<h1>`` to ``<h6>``.
    """
    blocks = Blocks()
    title = html_into(blocks, markup)
    return HtmlText(text=blocks.render(), title=title or blocks.first_heading())


def html_into(blocks: Blocks, markup: str) -> str | None:
    """Add the prose of ``markup`` (a document or a fragment) to ``blocks``; its ``<title>``, if any."""
    parser = _HtmlToText(blocks)
    parser.feed(markup)
    parser.close()
    return parser.title
