"""Episode and speaker profiles: the bundled defaults, seeding, voice checks.

The bundled profiles are seeded into the store once (:func:`seed_defaults`,
on start-up): the store remembers every name it ever seeded, so seeding again
never overwrites a user's edit nor brings back a profile the user deleted.

The bundled voices are espeak-ng voices (language + variant, e.g.
``en-us+m3``, ``cmn+f3``); :func:`check_speaker_profile` refuses a voice the
installed espeak-ng does not have. ``tech_news_zh`` and ``dual_host_zh`` are a
Chinese episode (科技周报) and its Mandarin hosts.

Read profiles with :func:`read_profile` and :func:`read_profiles`: a profile an
older version stored that this one refuses (a whitespace-only ``personality``
used to be stored as ``""``) is then :class:`~podflow.errors.UnreadableProfile`,
naming it, rather than a pydantic error. It is not repaired on reading: nothing
could stand in for the missing text. Replacing or deleting it, which never reads
it, repairs the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from .errors import InvalidInput, UnreadableProfile
from .generation.espeak import Voices, available_voices
from .models import EpisodeProfile, Speaker, SpeakerProfile, problems
from .store.base import Profile, ProfileKind, Store, StoredProfile, profile_of

__all__ = [
    "BUNDLED_EPISODE_PROFILES",
    "BUNDLED_PROFILES",
    "BUNDLED_SPEAKER_PROFILES",
    "available_voices",
    "check_speaker_profile",
    "parse_profile",
    "read_profile",
    "read_profiles",
    "seed_defaults",
]

BUNDLED_EPISODE_PROFILES: tuple[EpisodeProfile, ...] = (
    EpisodeProfile(
        name="tech_news",
        description="A brisk roundup of technology news: what happened and why it matters.",
        num_segments=4,
        default_briefing=(
            "Cover the most important developments first, explain why each one matters, "
            "and keep the tone lively and accessible."
        ),
        words_per_segment=120,
    ),
    EpisodeProfile(
        name="deep_dive",
        description="A long, thorough episode that explores one subject in depth.",
        num_segments=6,
        default_briefing=(
            "Explore the subject in depth: the key ideas, the evidence behind them "
            "and the questions that remain open."
        ),
        words_per_segment=250,
    ),
    EpisodeProfile(
        name="quick_brief",
        description="A short briefing: the essentials in a couple of minutes.",
        num_segments=2,
        default_briefing="Summarise the essentials briefly and skip the digressions.",
        words_per_segment=80,
    ),
    EpisodeProfile(
        name="tech_news_zh",
        description="科技周报: a brisk roundup of technology news, in Mandarin Chinese.",
        num_segments=4,
        default_briefing="先讲最重要的进展，说明每一项为什么重要，语气轻松易懂。",
        words_per_segment=200,  # characters: a Chinese "word" is a character
        language="zh",
    ),
)

BUNDLED_SPEAKER_PROFILES: tuple[SpeakerProfile, ...] = (
    SpeakerProfile(
        name="dual_host",
        description="Two hosts in conversation: one guides, one explains.",
        speakers=[
            Speaker(
                name="Alex",
                voice="en-us+m3",
                personality="Curious host who guides the conversation and asks what listeners would ask.",
            ),
            Speaker(
                name="Jordan",
                voice="en-us+f3",
                personality="Knowledgeable co-host who explains the details with concrete examples.",
            ),
        ],
    ),
    SpeakerProfile(
        name="solo",
        description="One narrator walking through the material.",
        speakers=[
            Speaker(
                name="Sam",
                voice="en-gb+m4",
                personality="Calm narrator who walks through the material step by step.",
            ),
        ],
    ),
    SpeakerProfile(
        name="panel",
        description="A moderated panel of three with different perspectives.",
        speakers=[
            Speaker(
                name="Morgan",
                voice="en-us+m7",
                personality="Moderator who keeps the panel on topic and sums up.",
            ),
            Speaker(
                name="Priya",
                voice="en-gb+f2",
                personality="Analyst who brings the numbers and the context.",
            ),
            Speaker(
                name="Leo",
                voice="en-gb+m2",
                personality="Friendly skeptic who questions assumptions.",
            ),
        ],
    ),
    SpeakerProfile(
        name="dual_host_zh",
        description="Two Mandarin-speaking hosts (espeak-ng's cmn voices).",
        speakers=[
            Speaker(name="小明", voice="cmn+m3", personality="好奇的主持人，替听众提问，引导对话。"),
            Speaker(name="小红", voice="cmn+f3", personality="博学的搭档，用具体的例子讲清细节。"),
        ],
    ),
)

BUNDLED_PROFILES: tuple[Profile, ...] = (*BUNDLED_EPISODE_PROFILES, *BUNDLED_SPEAKER_PROFILES)


def seed_defaults(store: Store, profiles: Sequence[Profile] = BUNDLED_PROFILES, *, now: datetime) -> list[str]:
    """Insert the bundled profiles that were never seeded before; the names inserted now.

    An edited bundled profile keeps its edits; a deleted one stays deleted.
    """
    return store.seed_profiles(profiles, now=now)


def read_profile(store: Store, kind: ProfileKind, name: str) -> Profile | None:
    """The stored profile ``name`` of ``kind``; None when there is none.

    Raises:
      UnreadableProfile: it is stored, but no longer validates.
    """
    try:
        return store.get_profile(kind, name)
    except ValidationError as exc:
        raise _unreadable(exc, kind, name) from None


def parse_profile(kind: ProfileKind, name: str, stored: StoredProfile) -> Profile | None:
    """A profile as the store keeps it (``Claimed.profiles``: JSON text or a document), read
    as :func:`read_profile` reads it; None for None.

    Raises:
      UnreadableProfile: it no longer validates.
    """
    try:
        return profile_of(kind, stored)
    except ValidationError as exc:
        raise _unreadable(exc, kind, name) from None


def read_profiles(store: Store, kind: ProfileKind) -> list[Profile]:
    """Every stored profile of ``kind``, by name.

    Raises:
      UnreadableProfile: one of them no longer validates (the first one met is named).
    """
    try:
        return store.list_profiles(kind)
    except ValidationError as exc:
        raise _unreadable(exc, kind, None) from None


def _unreadable(exc: ValidationError, kind: ProfileKind, name: str | None) -> UnreadableProfile:
    if name is None:  # a profile names itself in its errors (podflow.models._Profile)
        name = next((e["ctx"]["profile"] for e in exc.errors() if "profile" in e.get("ctx", {})), None)
    return UnreadableProfile(kind, name, problems(exc, where="profile"))


def check_speaker_profile(profile: SpeakerProfile, *, tts: str) -> None:
    """Refuse a speaker profile whose voices the speech engine ``tts`` lacks.

    Unique speaker names and 1 to 4 speakers are checked by the model itself.
    Only espeak-ng's voices are known in advance: with ``tts="none"`` any voice
    is accepted (nothing is spoken), and with ``tts="openai"`` a voice is the
    provider's voice name, which the provider itself checks when it speaks.

    Raises:
      InvalidInput: ``field`` is ``speakers[i].voice`` for the first unknown voice.
      ToolMissing: ``tts="espeak"`` and espeak-ng is not installed.
    """
    if tts != "espeak":
        return
    voices = available_voices()
    for i, speaker in enumerate(profile.speakers):
        if speaker.voice not in voices:
            raise InvalidInput(
                f"unknown espeak-ng voice {speaker.voice!r} for speaker {speaker.name!r}; "
                + _voice_hint(voices),
                field=f"speakers[{i}].voice",
            )


def _voice_hint(voices: Voices) -> str:
    examples = [v for v in ("en-us", "en-us+m3", "en-gb+f2") if v in voices]
    shown = f" such as {', '.join(repr(v) for v in examples)}" if examples else ""
    return (
        f"use a language{shown}, optionally with a variant after '+' "
        "(see `espeak-ng --voices` and `espeak-ng --voices=variant`)"
    )
