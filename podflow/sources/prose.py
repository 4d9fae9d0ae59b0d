"""The shape of prose both markup converters produce (:mod:`.html`, :mod:`.markdown`).

Paragraphs are separated by a blank line, each heading is a paragraph of its
own, and each list item (or table row) is a line of its own ending in
sentence punctuation, so a speech engine pauses after it and a sentence
splitter sees it as a sentence. Consecutive items of one list are single
lines; the next list starts a paragraph apart.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["Blocks", "BlockKind", "as_sentence", "collapse"]

BlockKind = Literal["para", "heading", "item"]

_SPACES = re.compile(r"\s+")
_END_PUNCT = (".", "!", "?", ":", ";", "…")


def collapse(text: str) -> str:
    """``text`` with every run of whitespace one space, stripped."""
    return _SPACES.sub(" ", text).strip()


def as_sentence(text: str) -> str:
    """``text`` ending in sentence punctuation (a full stop if it had none)."""
    return text if text.endswith(_END_PUNCT) else text + "."


class Blocks:
    """Paragraphs, headings and list items, in order, rendered as the module docstring says."""

    def __init__(self) -> None:
        self._out: list[tuple[str, str]] = []  # (kind, text); kind: a BlockKind, or "end" of a list

    def add(self, kind: BlockKind, text: str) -> None:
        """Append a block; whitespace is collapsed, and an empty block is no block."""
        text = collapse(text)
        if text:
            self._out.append((kind, as_sentence(text) if kind == "item" else text))

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
