"""What the LLM writer says to the model: the sources within a budget, and the two prompts.

Sources are sent as prose (Markdown reduced, :func:`podflow.sources.source_prose`)
within PODFLOW_LLM_SOURCE_CHARS characters in all: a source shorter than its
fair share of the budget is sent whole, the others share what is left and are
cut at a paragraph or sentence end, marked ``[…]``. The writer says in
progress when it truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ....models import Source
from ....sources import source_prose
from ...framing import language_name, phrases_for
from ...outline import Outline
from ..base import OutlineJob, TranscriptJob
from .schema import Counts

__all__ = ["Material", "Message", "condense", "outline_messages", "reask", "transcript_messages"]

Message = dict[str, str]
_CUT_MARK = " […]"
#: a cut moves back to a paragraph or sentence end within this share of the source's allowance
_CUT_SLACK = 0.2
_REPLY_ECHO_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Material:
    """The sources as sent: ``(source, text)`` in request order."""

    texts: tuple[tuple[Source, str], ...]
    total_chars: int
    sent_chars: int
    budget_chars: int

    @property
    def truncated(self) -> bool:
        return self.sent_chars < self.total_chars

    def note(self) -> str:
        """For progress: what was sent, and whether it was cut."""
        if not self.truncated:
            return f"{self.total_chars:,} characters of sources"
        return (
            f"sources truncated to {self.sent_chars:,} of {self.total_chars:,} characters "
            f"(PODFLOW_LLM_SOURCE_CHARS={self.budget_chars:,})"
        )


def condense(sources: tuple[Source, ...], *, budget_chars: int) -> Material:
    """The sources' prose within ``budget_chars`` in all (fair shares, cut at a boundary)."""
    prose = [source_prose(source).strip() for source in sources]
    allowance = [0] * len(prose)
    left, waiting = budget_chars, sorted(range(len(prose)), key=lambda i: len(prose[i]))
    while waiting:  # the shortest first: what they leave goes to the longer ones
        share = left // len(waiting)
        i = waiting.pop(0)
        allowance[i] = min(len(prose[i]), share)
        left -= allowance[i]
    texts = tuple((source, _cut(text, share)) for source, text, share in zip(sources, prose, allowance, strict=True))
    return Material(
        texts=texts,
        total_chars=sum(len(text) for text in prose),
        sent_chars=sum(len(text) for _, text in texts),
        budget_chars=budget_chars,
    )


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    room = max(0, limit - len(_CUT_MARK))
    head = text[:room]
    floor = int(room * (1 - _CUT_SLACK))
    for boundary in ("\n\n", ". ", "。", "! ", "? ", "！", "？", "\n"):
        at = head.rfind(boundary)
        if at >= floor:
            head = head[: at + len(boundary)]
            break
    return head.rstrip() + _CUT_MARK


def _sources_block(material: Material) -> str:
    return "\n\n".join(
        f'<source id="{source.source_id}" title="{source.title}">\n{text}\n</source>' for source, text in material.texts
    )


def _length(words: int, language: str) -> str:
    unit = "characters" if phrases_for(language).counts_characters else "words"
    return f"about {words} {unit}"


def _system(role: str, language: str) -> Message:
    return {
        "role": "system",
        "content": (
            f"{role} Answer with one JSON object that follows the given JSON schema, and nothing else. "
            f"Write every title, point and line in {language_name(language)}."
        ),
    }


def _speakers(speakers: list[tuple[str, str]]) -> str:
    return "\n".join(f"- {name}: {personality}" for name, personality in speakers)


def outline_messages(job: OutlineJob, material: Material, counts: Counts) -> list[Message]:
    """The outline prompt: plan ``counts.segments`` segments grounded in the sources."""
    profile = job.episode_profile
    low, high = counts.points
    user = (
        f'Plan the podcast episode "{job.episode_name}".\n\n'
        f"Briefing:\n{job.briefing or '(none)'}\n\n"
        f"The episode has exactly {counts.segments} segment(s), in the order they are discussed. For each "
        f"segment give a short title, {low} to {high} key points taken from the sources (the facts, figures "
        "and claims to discuss, each a full sentence with enough detail to talk about), and the ids of the "
        "sources it draws on. Use only what the sources say. Each segment will be discussed in "
        f"{_length(profile.words_per_segment, job.language)}.\n\n"
        f"Sources:\n{_sources_block(material)}"
    )
    role = "You are the producer of a podcast and plan its episodes from source documents."
    return [_system(role, job.language), {"role": "user", "content": user}]


def _outline_block(outline: Outline) -> str:
    lines = []
    for segment in outline.segments:
        lines.append(f"{segment.index}. {segment.title}")
        lines += [f"   - {point}" for point in segment.key_points]
    return "\n".join(lines)


def transcript_messages(job: TranscriptJob, material: Material, counts: Counts) -> list[Message]:
    """The transcript prompt: the dialogue for the outline among the profile's speakers."""
    speakers = [(s.name, s.personality) for s in job.speaker_profile.speakers]
    host, others = speakers[0][0], [name for name, _ in speakers[1:]]
    low, high = counts.segment_turns
    cast = f"{host} hosts" + (f"; with {', '.join(others)}" if others else " alone, as the narrator")
    length = _length(job.episode_profile.words_per_segment, job.language)
    introduce = ", introduces the others" if others else ""
    passing = ", passing the conversation among the speakers" if others else ""
    user = (
        f'Write the script of the podcast episode "{job.episode_name}". Only these speakers talk ({cast}):\n'
        f"{_speakers(speakers)}\n\n"
        f"Briefing:\n{job.briefing or '(none)'}\n\n"
        "Structure:\n"
        f"- intro: {counts.intro_turns[0]} to {counts.intro_turns[1]} turns: {host} welcomes the listeners "
        f'to "{job.episode_name}"{introduce} and says what the episode covers;\n'
        f"- segments: exactly {counts.segments}, one per outline segment and in its order; each about "
        f"{counts.target_turns} turns ({low} to {high}) and {length} in all{passing};\n"
        f"- outro: {counts.outro_turns[0]} to {counts.outro_turns[1]} turns: a short recap and a goodbye.\n"
        "Each turn is one speaker's line of natural spoken language (no stage directions, no speaker names "
        "in the text). Ground every claim in the outline and the sources; never invent facts.\n\n"
        f"Outline:\n{_outline_block(job.outline)}\n\n"
        f"Sources:\n{_sources_block(material)}"
    )
    role = "You write podcast dialogue that sounds natural when spoken aloud."
    return [_system(role, job.language), {"role": "user", "content": user}]


def reask(messages: list[Message], reply: str, problem: str) -> list[Message]:
    """The conversation so far, the unusable reply, and a request to fix ``problem``."""
    echoed = reply if len(reply) <= _REPLY_ECHO_CHARS else reply[:_REPLY_ECHO_CHARS] + " …"
    return [
        *messages,
        {"role": "assistant", "content": echoed or "(empty)"},
        {
            "role": "user",
            "content": f"That reply cannot be used: {problem}. Answer again with the complete JSON object, "
            "following the schema and every count asked for.",
        },
    ]
