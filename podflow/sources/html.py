"""Markup to prose: HTML and Markdown reduced to plain text with the stdlib.

Both converters produce the same shape of text: paragraphs separated by a
blank line, each heading a paragraph of its own, each list item a line of its
own ending in sentence punctuation (so a speech engine pauses after it and a
sentence splitter sees it as a sentence). Scripts, styles and code blocks are
dropped: they are not prose anyone wants read aloud.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["HtmlText", "html_to_text", "markdown_title", "markdown_to_text"]

_SPACES = re.compile(r"\s+")
_END_PUNCT = (".", "!", "?", ":", ";", "…")


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _as_item(text: str) -> str:
    """A list item as a sentence: it ends in punctuation."""
    return text if text.endswith(_END_PUNCT) else text + "."


class _Blocks:
    """Paragraphs, headings and list items, rendered as the converters promise."""

    def __init__(self) -> None:
        self._out: list[tuple[str, str]] = []  # (kind, text); kind: para | heading | item

    def add(self, kind: str, text: str) -> None:
        text = _collapse(text)
        if text:
            self._out.append((kind, _as_item(text) if kind == "item" else text))

    def end_list(self) -> None:
        """The next item starts a new list (a paragraph apart from this one)."""
        self._out.append(("end", ""))

    def first_heading(self) -> str | None:
        return next((text for kind, text in self._out if kind == "heading"), None)

    def render(self) -> str:
        parts: list[str] = []
        previous = ""
        for kind, text in self._out:
            if kind == "end":
                previous = kind
                continue
            if parts:
                parts.append("\n" if kind == previous == "item" else "\n\n")
            parts.append(text)
            previous = kind
        return "".join(parts)


# -- HTML -------------------------------------------------------------------------

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
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive unescaped
        self.blocks = _Blocks()
        self.title: str | None = None
        self._buffer: list[str] = []
        self._kind = "para"
        self._skip_depth = 0
        self._in_title = False
        self._title_parts: list[str] = []

    def _flush(self, next_kind: str = "para") -> None:
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
        self.title = _collapse("".join(self._title_parts)) or None


def html_to_text(markup: str) -> HtmlText:
    """Reduce an HTML document to prose (see the module docstring for the shape).

    Entities are unescaped; ``script``, ``style``, ``head`` and the like are
    dropped; the title is the ``<title>``, else the first ``<h1>`` to ``<h6>``.
    """
    parser = _HtmlToText()
    parser.feed(markup)
    parser.close()
    return HtmlText(text=parser.blocks.render(), title=parser.title or parser.blocks.first_heading())


# -- Markdown ---------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}#{1,6}(?:\s+(.*?))?\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+(?:\[[ xX]\]\s+)?(.*)$")
_QUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?\s*$")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.DOTALL)

_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # image → alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # autolink
    (re.compile(r"<[^>\n]+>"), ""),  # inline HTML tags
    (re.compile(r"(`+)(.+?)\1"), r"\2"),  # code span
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *em*
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),  # _em_ (not snake_case)
    (re.compile(r"~~(.+?)~~"), r"\1"),  # strikethrough
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),  # backslash escapes
]


def _inline(text: str) -> str:
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return html.unescape(text)


def _table_row(line: str) -> str:
    cells = [_inline(cell.strip()) for cell in line.strip().strip("|").split("|")]
    return ", ".join(cell for cell in cells if cell)


def _markdown_blocks(markdown: str) -> _Blocks:
    blocks = _Blocks()
    lines = _FRONT_MATTER.sub("", markdown.replace("\r\n", "\n")).split("\n")
    paragraph: list[str] = []
    fence: str | None = None

    def flush() -> None:
        blocks.add("para", " ".join(paragraph))
        paragraph.clear()

    for i, raw in enumerate(lines):
        if fence is not None:  # inside a fenced code block: skip to its end
            if raw.strip().startswith(fence):
                fence = None
            continue
        opened = _FENCE.match(raw)
        if opened:
            flush()
            fence = opened.group(1)[:3]
            continue
        line = _QUOTE.sub("", raw)
        if not line.strip():
            flush()
            blocks.end_list()
        elif _REF_DEF.match(line):
            flush()
        elif paragraph and _SETEXT.match(line):
            blocks.add("heading", " ".join(paragraph))
            paragraph.clear()
        elif _RULE.match(line) or _TABLE_RULE.match(line):
            flush()
        elif heading := _ATX.match(line):
            flush()
            blocks.add("heading", _inline(heading.group(1) or ""))
        elif item := _ITEM.match(line):
            flush()
            blocks.add("item", _inline(item.group(1)))
        elif _is_table_row(lines, i):
            flush()
            blocks.add("item", _table_row(line))
        else:
            paragraph.append(_inline(line.strip()))
    flush()
    return blocks


def _is_table_row(lines: list[str], i: int) -> bool:
    """A pipe line is a table row when it starts with a pipe or sits next to a table rule."""
    if "|" not in lines[i]:
        return False
    return lines[i].lstrip().startswith("|") or any(
        _TABLE_RULE.match(line) for line in lines[max(0, i - 1) : i + 2]
    )


def markdown_to_text(markdown: str) -> str:
    """Markdown as plain prose: markup removed, links reduced to their text,
    code blocks and front matter dropped, list items and table rows as lines."""
    return _markdown_blocks(markdown).render()


def markdown_title(markdown: str) -> str | None:
    """The text of the first heading (ATX ``#`` or setext), if any."""
    return _markdown_blocks(markdown).first_heading()
