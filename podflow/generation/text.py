"""Text analysis for the built-in generator: sections, sentences and words.

Deliberately simple and deterministic: a rule-based sentence splitter, a
heading heuristic, and small English and Chinese stop-word lists. No models,
no network.

Chinese and Japanese text has no spaces between words, so each CJK character
counts as a word: lengths (``words_per_segment``, a transcript's word count)
are counted in characters there, and sentences also end at ``。！？``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Source
from ..sources import source_prose
from .framing import ENGLISH

__all__ = ["Section", "content_words", "join_words", "sections", "split_sentences", "words"]

#: CJK ideographs, kana and their punctuation-free neighbours: one word per character
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+(?:['\u2019](?:(?![{_CJK}])[^\W_])+)*")
# a sentence ends at . ! ? … (and closing quotes/brackets) before a space, or at 。！？ anywhere
_BOUNDARY = re.compile(r"[.!?…][\"'\u201d\u2019)\]]*(?=\s+(?![a-z]))|[。！？]+[\u201d\u2019」』）]*")
_ENDS_SENTENCE = (".", "!", "?", "…", ":", ";", ",", '"', "\u201d", "\u2019", ")", *"。！？；：，、」』）")
_ABBREVIATIONS_TEXT = """mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig no vol approx inc ltd co corp
    dept est jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())
_HEADING_MAX_WORDS = 12
_HEADING_MAX_CHARACTERS = 30

_STOPWORDS_TEXT = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few for from
    further had has
    have having he her here hers herself him himself his how i if in into is it its itself just let me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself yourselves one two also may might must shall us new like get got
    many much even well way use used using make made said says say"""
#: Chinese function characters (particles, pronouns, common verbs of being and having)
_CHINESE_STOPWORDS = "的了是在和也就都而及与着或这那我你他她它们个之其有为以于上下中不对把被从到说要会能让将很"
STOPWORDS = frozenset(_STOPWORDS_TEXT.split()) | frozenset(_CHINESE_STOPWORDS)
_IS_CJK = re.compile(f"^[{_CJK}]$")


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of one source under one heading."""

    source_id: str
    title: str
    sentences: tuple[str, ...]


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased."""
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    """The words that carry meaning: no stop words, no numbers, no single letters
    (a single CJK character is a word, not a letter)."""
    return [
        w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or _IS_CJK.match(w)) and not w.isdigit()
    ]


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences.

    A line ending in sentence punctuation ends a sentence (list items); other
    line breaks are soft wraps. A sentence never ends before a lower-case
    word, nor after an abbreviation (``Dr.``, ``e.g.``) or an initial.
    """
    sentences: list[str] = []
    for chunk in re.split(r"(?<=[.!?…:;。！？：；])\n", paragraph):
        text = " ".join(chunk.split())
        start = 0
        for match in _BOUNDARY.finditer(text):
            before = text[start : match.start()].rsplit(" ", 1)[-1].lower()
            if before in _ABBREVIATIONS or (len(before) == 1 and before.isalpha() and not _IS_CJK.match(before)):
                continue
            sentences.append(text[start : match.end()].strip())
            start = match.end()
        sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _is_heading(paragraph: str) -> bool:
    return (
        "\n" not in paragraph
        and len(paragraph.split()) <= _HEADING_MAX_WORDS
        and (len(paragraph) <= _HEADING_MAX_CHARACTERS or not _has_cjk(paragraph))
        and not paragraph.rstrip().endswith(_ENDS_SENTENCE)
    )


def _has_cjk(text: str) -> bool:
    return any(_IS_CJK.match(ch) for ch in text)


def sections(source: Source) -> list[Section]:
    """The source's prose cut at its headings.

    Text before the first heading goes under the source's title; a heading
    with nothing under it yields to the next one. A source of nothing but
    heading-like lines is one section of those lines.
    """
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", source_prose(source)) if p.strip()]
    found: list[Section] = []
    title, sentences = source.title, list[str]()
    for paragraph in paragraphs:
        if _is_heading(paragraph):
            if sentences:
                found.append(Section(source.source_id, title, tuple(sentences)))
            title, sentences = paragraph, []
        else:
            sentences.extend(split_sentences(paragraph))
    if sentences:
        found.append(Section(source.source_id, title, tuple(sentences)))
    if not found and paragraphs:
        found.append(Section(source.source_id, source.title, tuple(paragraphs)))
    return found


def join_words(items: Iterable[str], *, most: int = 4) -> str:
    """``a``, ``a and b``, ``a, b and c``; beyond ``most`` items, ``a, b, c and others``
    (English; :meth:`podflow.generation.framing.Phrases.join` for other languages)."""
    return ENGLISH.join(items, most=most)
