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
from typing import Any, Literal

from ..models import SpeakerProfile
from .base import GenerationRequest
from .outline import Outline, Segment
from .text import join_words, split_sentences, words

__all__ = ["Transcript", "Turn", "build_transcript"]

Part = Literal["intro", "segment", "outro"]

#: a turn takes key points until it has this many words or sentences
_TURN_WORDS = 25
_TURN_SENTENCES = 2

_OPENINGS = [
    "Next up: {title}.",
    "Let's turn to {title}.",
    "Moving on to {title}.",
    "Now for {title}.",
]
_HANDOVERS = [
    "{name}, what stands out to you here?",
    "{name}, what else should we know?",
    "What do you make of that, {name}?",
    "{name}, can you add to that?",
]
_ANSWERS = [
    "What stands out to me is this.",
    "There's more to it.",
    "Good question.",
    "Here's what I'd add.",
]
_REPLIES = ["Right.", "Exactly.", "And there's another detail.", "Yes, and it goes further.", "Good point."]
_NARRATION = ["Here's another point.", "There's more.", "Worth noting, too.", "And then this."]
_GREETINGS = ["Hi, I'm {name}. Glad to be here.", "And I'm {name}. Let's get into it.", "Hello, {name} here."]
_FAREWELLS = ["Thanks for having me!", "It was a pleasure.", "Thanks, everyone."]
_REACTIONS = ["That's a lot to think about.", "Fascinating stuff.", "What a story."]


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

    @property
    def word_count(self) -> int:
        return sum(len(words(turn.text)) for turn in self.turns)

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_name": self.episode_name,
            "speakers": [{"name": s.name, "voice": s.voice} for s in self.speakers.speakers],
            "segments": [{"index": s.index, "title": s.title} for s in self.segments],
            "turns": [
                {"index": i, "speaker": t.speaker, "part": t.part, "segment": t.segment, "text": t.text}
                for i, t in enumerate(self.turns)
            ],
            "word_count": self.word_count,
        }


def build_transcript(request: GenerationRequest, outline: Outline) -> Transcript:
    """The dialogue for ``outline`` among ``request.speaker_profile``'s speakers."""
    names = [s.name for s in request.speaker_profile.speakers]
    turns = _intro(request, outline, names)
    for segment in outline.segments:
        # whoever spoke last hands over: nobody takes two turns in a row
        turns += _segment(segment, names, lead=(names.index(turns[-1].speaker) + 1) % len(names))
    turns += _outro(request, outline, names, last=turns[-1].speaker)
    return Transcript(
        episode_name=request.episode_name,
        speakers=request.speaker_profile,
        segments=outline.segments,
        turns=tuple(turns),
    )


def _intro(request: GenerationRequest, outline: Outline, names: list[str]) -> list[Turn]:
    host, guests = names[0], names[1:]
    lines = [f"Welcome to {_sentence(request.episode_name)} I'm {host}."]
    if guests:
        lines.append(f"With me today: {join_words(guests)}.")
    lines.append(f"In this episode: {_agenda(outline)}.")
    brief = _brief(request.briefing)
    if brief:
        lines.append(f"Our brief for today: {brief}")
    turns = [Turn(host, " ".join(lines), "intro")]
    for i, name in enumerate(guests):
        turns.append(Turn(name, _GREETINGS[i % len(_GREETINGS)].format(name=name), "intro"))
    return turns


def _segment(segment: Segment, names: list[str], *, lead: int) -> list[Turn]:
    n = len(names)
    chunks = _chunks(segment.key_points)
    opening = "Let's start with {title}." if segment.index == 1 else _OPENINGS[segment.index % len(_OPENINGS)]
    turns: list[Turn] = []
    for k, chunk in enumerate(chunks):
        speaker = names[(lead + k) % n]
        if k == 0:
            text = f"{opening.format(title=segment.title)} {chunk}"
            if n > 1 and len(chunks) > 1:  # hand over to the next speaker with a question
                text += " " + _HANDOVERS[segment.index % len(_HANDOVERS)].format(name=names[(lead + 1) % n])
        elif n == 1:
            text = f"{_NARRATION[(segment.index + k) % len(_NARRATION)]} {chunk}"
        elif k == 1:
            text = f"{_ANSWERS[segment.index % len(_ANSWERS)]} {chunk}"
        else:
            text = f"{_REPLIES[(segment.index + k) % len(_REPLIES)]} {chunk}"
        turns.append(Turn(speaker, text, "segment", segment.index))
    return turns


def _outro(request: GenerationRequest, outline: Outline, names: list[str], *, last: str) -> list[Turn]:
    host, guests = names[0], names[1:]
    recap = f"That brings us to the end of {_sentence(request.episode_name)} We covered {_agenda(outline)}."
    if not guests:
        return [Turn(host, f"{recap} Thanks for listening, and goodbye!", "outro")]
    turns = []
    if last == host:  # a guest reacts first, so the host does not answer itself
        turns.append(Turn(guests[0], _REACTIONS[len(outline.segments) % len(_REACTIONS)], "outro"))
    turns.append(Turn(host, f"{recap} Thank you, {join_words(guests)}.", "outro"))
    turns += [Turn(name, _FAREWELLS[i % len(_FAREWELLS)], "outro") for i, name in enumerate(guests)]
    turns.append(Turn(host, "Thanks for listening, and goodbye!", "outro"))
    return turns


def _chunks(points: tuple[str, ...]) -> list[str]:
    """Key points gathered into turns of one or two sentences."""
    chunks: list[list[str]] = []
    size = _TURN_WORDS
    for point in points:
        if size >= _TURN_WORDS or len(chunks[-1]) >= _TURN_SENTENCES:
            chunks.append([])
            size = 0
        chunks[-1].append(_sentence(point))
        size += len(words(point))
    return [" ".join(chunk) for chunk in chunks]


def _agenda(outline: Outline) -> str:
    """The segment titles as something to say: "first, A; then B; and finally, C"."""
    titles = [s.title for s in outline.segments]
    if len(titles) == 1:
        return titles[0]
    middle = "".join(f"; then {t}" for t in titles[1:-1])
    return f"first, {titles[0]}{middle}; and finally, {titles[-1]}"


def _brief(briefing: str) -> str:
    """The first sentence of the briefing's last paragraph (the run's own focus, if any)."""
    paragraphs = [p for p in briefing.split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    first = split_sentences(paragraphs[-1].strip())[0]
    return _sentence(first[:1].lower() + first[1:] if first[1:2].islower() else first)


def _sentence(text: str) -> str:
    """``text`` ending in sentence punctuation."""
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…", '"', "\u201d")) else text + "."
