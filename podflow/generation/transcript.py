"""The transcript: a turn-taking dialogue among the profile's speakers.

Built from the outline by rule, so the same outline always gives the same
transcript. The first speaker hosts: an intro names the episode, the
speakers and the segments, and quotes the brief (the last paragraph of the
briefing, which is the run's ``briefing_suffix`` when it has one). Each
segment is led by the next speaker in turn and carries its key points, one
or two sentences per turn, passed around the speakers; in a conversation the
lead hands over with a question. An outro recaps and says goodbye. A solo
profile narrates all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..models import SpeakerProfile
from .base import GenerationRequest
from .framing import Phrases, phrases_for
from .outline import Outline, Segment
from .text import split_sentences, words

if TYPE_CHECKING:
    from .writers.base import TranscriptJob

__all__ = ["Transcript", "Turn", "build_transcript"]

Part = Literal["intro", "segment", "outro"]

#: a turn takes key points until it has this many words or sentences
_TURN_WORDS = 25
_TURN_SENTENCES = 2


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str
    text: str
    part: Part
    segment: int | None = None  # the outline segment's index, for segment turns


@dataclass(frozen=True, slots=True)
class Transcript:
    episode_name: str
    speakers: SpeakerProfile
    segments: tuple[Segment, ...]
    turns: tuple[Turn, ...]
    #: BCP 47; in Chinese and Japanese a word is a character (see :mod:`.text`)
    language: str = "en"

    @property
    def word_count(self) -> int:
        return sum(len(words(turn.text)) for turn in self.turns)

    @property
    def length(self) -> str:
        """``1,234 words``, or ``1,234 characters`` where words are characters."""
        unit = "characters" if phrases_for(self.language).counts_characters else "words"
        return f"{self.word_count:,} {unit}"

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_name": self.episode_name,
            "language": self.language,
            "speakers": [{"name": s.name, "voice": s.voice} for s in self.speakers.speakers],
            "segments": [{"index": s.index, "title": s.title} for s in self.segments],
            "turns": [
                {"index": i, "speaker": t.speaker, "part": t.part, "segment": t.segment, "text": t.text}
                for i, t in enumerate(self.turns)
            ],
            "word_count": self.word_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, speakers: SpeakerProfile, segments: tuple[Segment, ...]) -> Transcript:
        """The inverse of :meth:`to_json` (a checkpoint read back), for the speakers and
        outline segments it was written for (its key includes both).

        Raises:
          KeyError, TypeError, ValueError: ``data`` is not such a transcript.
        """
        names = {s.name for s in speakers.speakers}
        turns = []
        for turn in data["turns"]:
            if turn["speaker"] not in names or turn["part"] not in ("intro", "segment", "outro"):
                raise ValueError(f"turn {turn.get('index')}: not a turn of these speakers")
            segment = turn["segment"]
            turns.append(
                Turn(str(turn["speaker"]), str(turn["text"]), turn["part"], None if segment is None else int(segment))
            )
        return cls(
            episode_name=str(data["episode_name"]),
            speakers=speakers,
            segments=segments,
            turns=tuple(turns),
            language=str(data["language"]),
        )


def build_transcript(request: GenerationRequest | TranscriptJob, outline: Outline) -> Transcript:
    """The dialogue for ``outline`` among ``request.speaker_profile``'s speakers, framed
    in the episode profile's language."""
    language = request.episode_profile.language
    phrases = phrases_for(language)
    names = [s.name for s in request.speaker_profile.speakers]
    turns = _intro(request, outline, names, phrases)
    for segment in outline.segments:
        # whoever spoke last hands over: nobody takes two turns in a row
        lead = (names.index(turns[-1].speaker) + 1) % len(names)
        turns += _segment(segment, names, phrases, lead=lead)
    turns += _outro(request, outline, names, phrases, last=turns[-1].speaker)
    return Transcript(
        episode_name=request.episode_name,
        speakers=request.speaker_profile,
        segments=outline.segments,
        turns=tuple(turns),
        language=language,
    )


def _intro(
    request: GenerationRequest | TranscriptJob, outline: Outline, names: list[str], phrases: Phrases
) -> list[Turn]:
    host, guests = names[0], names[1:]
    lines = [phrases.welcome.format(**phrases.names(request.episode_name), host=host)]
    if guests:
        lines.append(phrases.with_me.format(names=phrases.join(guests)))
    lines.append(phrases.in_this_episode.format(agenda=_agenda(outline, phrases)))
    brief = _brief(request.briefing, phrases)
    if brief:
        lines.append(phrases.brief.format(brief=brief))
    turns = [Turn(host, _spaced(lines, phrases), "intro")]
    for i, name in enumerate(guests):
        turns.append(Turn(name, phrases.greetings[i % len(phrases.greetings)].format(name=name), "intro"))
    return turns


def _segment(segment: Segment, names: list[str], phrases: Phrases, *, lead: int) -> list[Turn]:
    n = len(names)
    chunks = _chunks(segment.key_points, phrases)
    openings = phrases.openings
    opening = phrases.first_opening if segment.index == 1 else openings[segment.index % len(openings)]
    turns: list[Turn] = []
    for k, chunk in enumerate(chunks):
        speaker = names[(lead + k) % n]
        if k == 0:
            parts = [opening.format(title=segment.title), chunk]
            if n > 1 and len(chunks) > 1:  # hand over to the next speaker with a question
                handover = phrases.handovers[segment.index % len(phrases.handovers)]
                parts.append(handover.format(name=names[(lead + 1) % n]))
        elif n == 1:
            parts = [phrases.narration[(segment.index + k) % len(phrases.narration)], chunk]
        elif k == 1:
            parts = [phrases.answers[segment.index % len(phrases.answers)], chunk]
        else:
            parts = [phrases.replies[(segment.index + k) % len(phrases.replies)], chunk]
        turns.append(Turn(speaker, _spaced(parts, phrases), "segment", segment.index))
    return turns


def _outro(
    request: GenerationRequest | TranscriptJob,
    outline: Outline,
    names: list[str],
    phrases: Phrases,
    *,
    last: str,
) -> list[Turn]:
    host, guests = names[0], names[1:]
    recap = phrases.recap.format(**phrases.names(request.episode_name), agenda=_agenda(outline, phrases))
    if not guests:
        return [Turn(host, _spaced([recap, phrases.goodbye_solo], phrases), "outro")]
    turns = []
    if last == host:  # a guest reacts first, so the host does not answer itself
        turns.append(Turn(guests[0], phrases.reactions[len(outline.segments) % len(phrases.reactions)], "outro"))
    thanks = phrases.thanks_guests.format(names=phrases.join(guests))
    turns.append(Turn(host, _spaced([recap, thanks], phrases), "outro"))
    turns += [Turn(name, phrases.farewells[i % len(phrases.farewells)], "outro") for i, name in enumerate(guests)]
    turns.append(Turn(host, phrases.goodbye, "outro"))
    return turns


def _chunks(points: tuple[str, ...], phrases: Phrases) -> list[str]:
    """Key points gathered into turns of one or two sentences."""
    chunks: list[list[str]] = []
    size = _TURN_WORDS
    for point in points:
        if size >= _TURN_WORDS or len(chunks[-1]) >= _TURN_SENTENCES:
            chunks.append([])
            size = 0
        chunks[-1].append(phrases.sentence(point))
        size += len(words(point))
    return [_spaced(chunk, phrases) for chunk in chunks]


def _spaced(sentences: list[str], phrases: Phrases) -> str:
    """Sentences one after the other: with a space, except where words are characters."""
    return ("" if phrases.counts_characters else " ").join(sentences)


def _agenda(outline: Outline, phrases: Phrases) -> str:
    return phrases.agenda([s.title for s in outline.segments])


def _brief(briefing: str, phrases: Phrases) -> str:
    """The first sentence of the briefing's last paragraph (the run's own focus, if any)."""
    paragraphs = [p for p in briefing.split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    first = split_sentences(paragraphs[-1].strip())[0]
    if phrases.lower_brief and first[1:2].islower():
        first = first[:1].lower() + first[1:]
    return phrases.sentence(first)
