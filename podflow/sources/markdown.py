"""Markdown reduced to prose, parsed by markdown-it-py (CommonMark, plus GFM tables and strikethrough).

The text has the shape :mod:`podflow.sources.prose` describes. What becomes of
each construct:

=========================  ====================================================
paragraph, block quote     a paragraph (soft and hard line breaks: spaces)
heading (ATX or setext)    a paragraph of its own; the first is the title
list item                  a line ending in punctuation; a lazy continuation
                           line and the item's further paragraphs stay in it;
                           nested items follow their parent, one line each;
                           a task box (``[ ]``, ``[x]``) is dropped
table                      a line per row, its cells joined with commas
code (fenced, indented)    dropped: code is not prose anyone wants read aloud
HTML block                 reduced like an HTML document (:mod:`.html`):
                           scripts and styles dropped, the text kept
emphasis, code spans,      their text
links, images              the link's text, the image's alt text
reference definitions,     dropped
thematic breaks, front
matter (``---`` ... ``---``)
=========================  ====================================================

A parser rather than line patterns: CommonMark's block structure (an indented
code block, a lazy continuation line, a list item's second paragraph) depends
on context no regular expression sees.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from .html import html_into
from .prose import Blocks, as_sentence, collapse

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = ["markdown_prose", "markdown_title", "markdown_to_text"]
_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.DOTALL)
_TASK_BOX = re.compile(r"^\[[ xX]\]\s+")
_LINE_BREAK_TAG = re.compile(r"^<br\b", re.IGNORECASE)
_LIST_OPEN = frozenset({"bullet_list_open", "ordered_list_open"})
_LIST_CLOSE = frozenset({"bullet_list_close", "ordered_list_close"})


@cache
def _parser() -> MarkdownIt:
    """The parser, made on first use (a worker that never reads Markdown never
    imports markdown-it). It holds only its configuration: one serves every thread."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _inline_text(token: Token) -> str:
    """The words of an inline token: markup gone, images by their alt text."""
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child))
        elif child.type == "html_inline" and _LINE_BREAK_TAG.match(child.content):
            parts.append(" ")
    return "".join(parts)


class _Reducer:
    """Walks markdown-it's block tokens, adding blocks in document order."""

    def __init__(self) -> None:
        self.blocks = Blocks()
        self._lists = 0
        #: the paragraphs of each open list item, innermost last
        self._items: list[list[str]] = []
        self._row: list[str] | None = None
        self._heading = False

    def _emit_items(self) -> None:
        """Add the open items' text gathered so far (a parent before its sub-list)."""
        for paragraphs in self._items:
            if paragraphs:
                first, *rest = paragraphs
                paragraphs[:] = [_TASK_BOX.sub("", collapse(first)), *rest]
                self.blocks.add("item", " ".join(as_sentence(p) for p in map(collapse, paragraphs) if p))
                paragraphs.clear()

    def token(self, token: Token) -> None:
        kind = token.type
        if kind in _LIST_OPEN:
            self._emit_items()
            self._lists += 1
        elif kind in _LIST_CLOSE:
            self._lists -= 1
            if not self._lists:
                self.blocks.end_list()
        elif kind == "list_item_open":
            self._items.append([])
        elif kind == "list_item_close":
            self._emit_items()
            self._items.pop()
        elif kind == "heading_open":
            self._emit_items()
            self._heading = True
        elif kind == "heading_close":
            self._heading = False
        elif kind == "tr_open":
            self._row = []
        elif kind == "tr_close" and self._row is not None:
            self.blocks.add("item", ", ".join(cell for cell in map(collapse, self._row) if cell))
            self._row = None
        elif kind == "table_open":
            self._emit_items()
        elif kind == "table_close":
            self.blocks.end_list()
        elif kind == "html_block":
            self._emit_items()
            html_into(self.blocks, token.content)
        elif kind == "inline":
            self._inline(_inline_text(token))
        # code_block, fence, hr, blockquote and paragraph markers: nothing to add

    def _inline(self, text: str) -> None:
        if self._row is not None:
            self._row.append(text)
        elif self._heading:
            self.blocks.add("heading", text)
        elif self._items:
            self._items[-1].append(text)
        else:
            self.blocks.add("para", text)


def _markdown_blocks(markdown: str) -> Blocks:
    reducer = _Reducer()
    for token in _parser().parse(_FRONT_MATTER.sub("", markdown.replace("\r\n", "\n"))):
        reducer.token(token)
    return reducer.blocks


def markdown_prose(markdown: str) -> tuple[str, str | None]:
    """:func:`markdown_to_text` and :func:`markdown_title` from one parse."""
    blocks = _markdown_blocks(markdown)
    return blocks.render(), blocks.first_heading()


def markdown_to_text(markdown: str) -> str:
    """Markdown as plain prose: markup removed, links reduced to their text,
    code blocks and front matter dropped, list items and table rows as lines."""
    return _markdown_blocks(markdown).render()


def markdown_title(markdown: str) -> str | None:
    """The text of the first heading (ATX ``#`` or setext), if any."""
    return _markdown_blocks(markdown).first_heading()
