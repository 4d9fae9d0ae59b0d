"""The outline: ``num_segments`` segments extracted from the sources.

Extractive and deterministic. The sources are cut into sections at their
headings; the sections are merged (in order, balancing sentence counts) or
split (the longest first) into one group per segment. Each segment is titled
after its first section and keeps its key sentences: the sentences scoring
highest on word frequency across all the sources (words of the briefing
count extra, so a briefing steers what is picked), until about
``words_per_segment`` words, in their original order.

When the sources hold fewer sentences than ``num_segments``, the outline has
one segment per sentence rather than repeating material
(``requested_segments`` keeps the number asked for).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError
from .base import GenerationRequest
from .framing import Phrases, phrases_for
from .text import Section, content_words, sections, words

if TYPE_CHECKING:
    from .writers.base import OutlineJob

__all__ = ["Outline", "Segment", "build_outline"]

#: templates in the transcript add words around the key points
_KEY_POINT_SHARE = 0.8
#: sentences shorter than this are fragments, picked only when nothing else is left
_MIN_SENTENCE_WORDS = 4
_BRIEFING_BONUS = 0.25
_KEYWORDS = 3


@dataclass(frozen=True, slots=True)
class Segment:
    index: int  # 1-based
    title: str
    source_ids: tuple[str, ...]
    key_points: tuple[str, ...]
    keywords: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "title": self.title,
            "source_ids": list(self.source_ids),
            "key_points": list(self.key_points),
            "keywords": list(self.keywords),
            "word_count": sum(len(words(p)) for p in self.key_points),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        """The inverse of :meth:`to_json`. Raises KeyError, TypeError or ValueError."""
        return cls(
            index=int(data["index"]),
            title=str(data["title"]),
            source_ids=tuple(map(str, data["source_ids"])),
            key_points=tuple(map(str, data["key_points"])),
            keywords=tuple(map(str, data["keywords"])),
        )


@dataclass(frozen=True, slots=True)
class Outline:
    episode_name: str
    requested_segments: int
    segments: tuple[Segment, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_name": self.episode_name,
            "requested_segments": self.requested_segments,
            "segments": [segment.to_json() for segment in self.segments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outline:
        """The inverse of :meth:`to_json` (a checkpoint read back). Raises KeyError, TypeError or ValueError."""
        return cls(
            episode_name=str(data["episode_name"]),
            requested_segments=int(data["requested_segments"]),
            segments=tuple(Segment.from_json(segment) for segment in data["segments"]),
        )


def build_outline(request: GenerationRequest | OutlineJob) -> Outline:
    """The outline of the episode ``request`` describes, titled in its profile's language.

    Raises:
      GenerationError: the sources hold no sentence at all.
    """
    found = [section for source in request.sources for section in sections(source)]
    total = sum(len(s.sentences) for s in found)
    if not total:
        raise GenerationError("the sources contain no text to build an episode from")
    wanted = request.episode_profile.num_segments
    phrases = phrases_for(request.episode_profile.language)
    groups = _group(found, min(wanted, total), phrases)
    scorer = _Scorer([sentence for s in found for sentence in s.sentences], focus=request.briefing)
    budget = request.episode_profile.words_per_segment * _KEY_POINT_SHARE
    segments = tuple(
        Segment(
            index=i,
            title=_title(group, phrases),
            source_ids=tuple(dict.fromkeys(s.source_id for s in group)),
            key_points=scorer.pick([sentence for s in group for sentence in s.sentences], budget),
            keywords=_keywords(group),
        )
        for i, group in enumerate(groups, start=1)
    )
    return Outline(episode_name=request.episode_name, requested_segments=wanted, segments=segments)


# -- grouping ----------------------------------------------------------------------


def _group(found: list[Section], count: int, phrases: Phrases) -> list[list[Section]]:
    """Exactly ``count`` groups of consecutive sections (``count`` <= sentences)."""
    parts = list(found)
    if len(parts) >= count:
        return _merge(parts, count)
    while len(parts) < count:  # split the longest section in two, in place
        i = max(range(len(parts)), key=lambda k: (len(parts[k].sentences), -k))
        middle = (len(parts[i].sentences) + 1) // 2
        first, second = parts[i].sentences[:middle], parts[i].sentences[middle:]
        parts[i : i + 1] = [_with(parts[i], first), _with(parts[i], second)]
    return [[part] for part in _number_parts(parts, phrases)]


def _with(section: Section, sentences: tuple[str, ...]) -> Section:
    return Section(section.source_id, section.title, sentences)


def _number_parts(parts: list[Section], phrases: Phrases) -> list[Section]:
    """Titles shared by split-off parts become "title (part k)"."""
    totals = Counter(p.title for p in parts)
    seen: Counter[str] = Counter()
    numbered = []
    for part in parts:
        seen[part.title] += 1
        split = totals[part.title] > 1
        title = phrases.part.format(title=part.title, number=seen[part.title]) if split else part.title
        numbered.append(Section(part.source_id, title, part.sentences))
    return numbered


def _merge(parts: list[Section], count: int) -> list[list[Section]]:
    """Consecutive parts in ``count`` groups of roughly equal sentence counts.

    A group closes before a part when adding it would take the group further
    past its share than stopping short of it.
    """
    total = sum(len(p.sentences) for p in parts)
    groups: list[list[Section]] = [[]]
    done = 0
    for i, part in enumerate(parts):
        left_parts, left_groups = len(parts) - i, count - len(groups)
        share = total * len(groups) / count
        overshoots = abs(done + len(part.sentences) - share) > abs(done - share)
        if groups[-1] and left_groups and (overshoots or left_parts == left_groups):
            groups.append([])
        groups[-1].append(part)
        done += len(part.sentences)
    return groups


def _title(group: Sequence[Section], phrases: Phrases) -> str:
    return phrases.join(dict.fromkeys(s.title for s in group), most=3)


def _keywords(group: Sequence[Section]) -> tuple[str, ...]:
    counts = Counter(w for s in group for sentence in s.sentences for w in content_words(sentence))
    return tuple(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_KEYWORDS])


# -- scoring -----------------------------------------------------------------------


class _Scorer:
    """Word-frequency sentence scores (Luhn-style), with a bonus for briefing words."""

    def __init__(self, corpus: Sequence[str], *, focus: str) -> None:
        counts = Counter(w for sentence in corpus for w in content_words(sentence))
        top = max(counts.values(), default=1)
        self._weight = {w: n / top for w, n in counts.items()}
        self._focus = frozenset(content_words(focus)) & counts.keys()

    def score(self, sentence: str) -> float:
        distinct = set(content_words(sentence))
        if not distinct:
            return 0.0
        base = sum(self._weight.get(w, 0.0) for w in distinct) / math.sqrt(len(distinct))
        return base + _BRIEFING_BONUS * len(distinct & self._focus)

    def pick(self, sentences: Sequence[str], budget: float) -> tuple[str, ...]:
        """The best sentences until ``budget`` words (at least one), in text order."""
        candidates = [i for i, s in enumerate(sentences) if len(words(s)) >= _MIN_SENTENCE_WORDS]
        ranked = sorted(candidates or range(len(sentences)), key=lambda i: (-self.score(sentences[i]), i))
        chosen: list[int] = []
        total = 0
        for i in ranked:
            if chosen and total >= budget:
                break
            chosen.append(i)
            total += len(words(sentences[i]))
        return tuple(sentences[i] for i in sorted(chosen))
