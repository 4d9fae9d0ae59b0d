"""What the LLM must reply: JSON schemas for structured output, and the pydantic models that check it.

Each reply is asked for with ``response_format={"type": "json_schema",
"json_schema": {"name", "strict": true, "schema"}}``. The schemas follow the
strict-mode rules OpenAI, vLLM, Ollama, LM Studio and llama.cpp servers
share (what the SDK's ``.parse(Model)`` produces): every object lists all its
properties as required and sets ``additionalProperties: false``, and only
keywords strict mode supports appear (``enum``, ``minItems``, ``maxItems``;
no ``minLength``). The counts an episode needs (:class:`Counts`: segments,
turns) are in the schema as well as in the prompt, and each turn's
``speaker`` is an ``enum`` of the profile's speaker names.

A server that constrains its output by the schema always replies something
that parses; one that does not (or a truncated reply) is checked here again,
by the same counts, plus what a schema cannot say (no blank text): a reply
that fails is asked again with the problem (:func:`problem`) in the prompt.
Length targets (words per segment) are guidance in the prompt only, never
grounds to reject a reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, ValidationInfo, field_validator

from ....models import EpisodeProfile
from ...framing import phrases_for

__all__ = [
    "Counts",
    "OutlineReply",
    "TranscriptReply",
    "outline_schema",
    "parse_outline",
    "parse_transcript",
    "problem",
    "transcript_schema",
]

#: a turn of about this many words (characters where a word is a character)
_WORDS_PER_TURN = 35
_CHARACTERS_PER_TURN = 70
_MAX_TURNS_PER_SEGMENT = 12
_POINTS = (1, 6)

Range = tuple[int, int]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


@dataclass(frozen=True, slots=True)
class Counts:
    """How many of everything a reply must have: one source for the schema, the
    prompt and the check."""

    segments: int
    speakers: tuple[str, ...]
    #: turns per segment the prompt asks for, and what is accepted
    target_turns: int
    segment_turns: Range
    intro_turns: Range
    outro_turns: Range
    points: Range = _POINTS

    @classmethod
    def of(cls, episode: EpisodeProfile, names: tuple[str, ...] = ()) -> Counts:
        """The counts for an episode among the speakers ``names`` (none for an outline)."""
        per_turn = _CHARACTERS_PER_TURN if phrases_for(episode.language).counts_characters else _WORDS_PER_TURN
        least = 1 if len(names) == 1 else 2
        target = min(_MAX_TURNS_PER_SEGMENT, max(least, len(names), round(episode.words_per_segment / per_turn)))
        return cls(
            segments=episode.num_segments,
            speakers=names,
            target_turns=target,
            segment_turns=(max(least, target // 2), 2 * target),
            intro_turns=(1, len(names) + 2),
            outro_turns=(1, len(names) + 2),
        )


# -- schemas ------------------------------------------------------------------------------


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _array(items: dict[str, Any], bounds: Range) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": bounds[0], "maxItems": bounds[1]}


_TEXT = {"type": "string"}


def outline_schema(counts: Counts, source_ids: list[str]) -> dict[str, Any]:
    """``{"segments": [{"title", "points": [...], "sources": [source ids]}]}``, exactly ``counts.segments``."""
    segment = _object(
        {
            "title": _TEXT,
            "points": _array(_TEXT, counts.points),
            "sources": _array({"type": "string", "enum": source_ids}, (1, len(source_ids))),
        }
    )
    return _object({"segments": _array(segment, (counts.segments, counts.segments))})


def transcript_schema(counts: Counts) -> dict[str, Any]:
    """``{"intro": [turn], "segments": [{"turns": [turn]}], "outro": [turn]}``; a turn is
    ``{"speaker": <one of the names>, "text"}``."""
    turn = _object({"speaker": {"type": "string", "enum": list(counts.speakers)}, "text": _TEXT})
    segment = _object({"turns": _array(turn, counts.segment_turns)})
    return _object(
        {
            "intro": _array(turn, counts.intro_turns),
            "segments": _array(segment, (counts.segments, counts.segments)),
            "outro": _array(turn, counts.outro_turns),
        }
    )


# -- checks ---------------------------------------------------------------------------------


def _counts(info: ValidationInfo) -> Counts:
    assert isinstance(info.context, Counts), "validate with context=Counts(...)"
    return info.context


def _within(items: list[Any], bounds: Range, what: str) -> None:
    low, high = bounds
    if not low <= len(items) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise ValueError(f"{len(items)} {what}; the schema asks for {wanted}")


def _counted(field: str, bounds: Callable[[Counts], Range], what: str) -> Any:
    """A validator of ``field``'s length: the same bounds the schema states."""

    def check(cls: type[BaseModel], value: list[Any], info: ValidationInfo) -> list[Any]:
        _within(value, bounds(_counts(info)), what)
        return value

    return field_validator(field)(classmethod(check))


def _segment_count(counts: Counts) -> Range:
    return (counts.segments, counts.segments)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SegmentOutline(_Reply):
    title: NonBlank
    points: list[NonBlank]
    sources: list[str]

    _points = _counted("points", lambda counts: counts.points, "points")


class OutlineReply(_Reply):
    segments: list[SegmentOutline]

    _segments = _counted("segments", _segment_count, "segments")


class TurnReply(_Reply):
    speaker: str
    text: NonBlank

    @field_validator("speaker")
    @classmethod
    def _known_speaker(cls, value: str, info: ValidationInfo) -> str:
        names = _counts(info).speakers
        if value.strip() not in names:
            raise ValueError(f"unknown speaker {value!r}; the speakers are {', '.join(names)}")
        return value.strip()


class SegmentTurns(_Reply):
    turns: list[TurnReply]

    _turns = _counted("turns", lambda counts: counts.segment_turns, "turns")


class TranscriptReply(_Reply):
    intro: list[TurnReply]
    segments: list[SegmentTurns]
    outro: list[TurnReply]

    _intro = _counted("intro", lambda counts: counts.intro_turns, "intro turns")
    _segments = _counted("segments", _segment_count, "segments")
    _outro = _counted("outro", lambda counts: counts.outro_turns, "outro turns")


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def _json_text(content: str) -> str:
    """The JSON in a reply: without a reasoning model's ``<think>`` block or a code fence around it."""
    content = _THINKING.sub("", content)
    match = _FENCE.match(content)
    return match.group(1) if match else content


def parse_outline(content: str, counts: Counts) -> OutlineReply:
    """Raises ValidationError (see :func:`problem`)."""
    return OutlineReply.model_validate_json(_json_text(content), context=counts)


def parse_transcript(content: str, counts: Counts) -> TranscriptReply:
    """Raises ValidationError (see :func:`problem`)."""
    return TranscriptReply.model_validate_json(_json_text(content), context=counts)


def problem(exc: ValidationError, *, most: int = 3) -> str:
    """The reply's problems in one line: ``segments.1.turns.0.speaker: unknown speaker 'Bob'; ...``."""
    found = []
    for error in exc.errors()[:most]:
        where = ".".join(str(part) for part in error["loc"]) or "reply"
        found.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    more = len(exc.errors()) - most
    return "; ".join(found) + (f"; and {more} more" if more > 0 else "")
