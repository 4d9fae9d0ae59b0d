"""Check a run request against the store, and assemble what a generator gets.

A submit reads the profiles a request names only the first time this process
meets them (:func:`validate_request` remembers, per store, which it found
readable: :func:`profiles_known`); afterwards its insert alone checks that they
and the sources still exist (``Store.create_run(check_names=True)``). A profile
can only become unreadable by being written without validation (an older
podflow), so remembering "readable" is safe; "exists" is never remembered.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from ..errors import GenerationError, InvalidInput, UnreadableProfile
from ..models import EpisodeProfile, Run, RunRequest, Source, SpeakerProfile
from ..profiles import parse_profile, read_profile
from ..store.base import Claimed, Profile, ProfileKind, Store, StoredProfile
from .base import GenerationRequest

__all__ = ["build_request", "forget_profiles", "profiles_known", "request_of", "validate_request"]

#: per store, the (kind, name) of the profiles this process read and found readable
_readable: weakref.WeakKeyDictionary[Store, set[tuple[ProfileKind, str]]] = weakref.WeakKeyDictionary()


def _named(request: RunRequest | Run) -> tuple[tuple[ProfileKind, str], tuple[ProfileKind, str]]:
    return ("episode", request.episode_profile), ("speaker", request.speaker_profile)


def profiles_known(store: Store, request: RunRequest) -> bool:
    """Whether :func:`validate_request` found both profiles ``request`` names readable
    in ``store`` before: a submit then leaves the check that they exist to its insert."""
    known = _readable.get(store)
    return known is not None and all(named in known for named in _named(request))


def forget_profiles(store: Store, request: RunRequest) -> None:
    """Read the profiles ``request`` names again at its next validation (one was gone)."""
    _readable.get(store, set()).difference_update(_named(request))


def validate_request(store: Store, request: RunRequest) -> None:
    """Refuse a request naming an unknown profile or source, before anything is stored.

    Raises:
      InvalidInput: ``field`` is ``episode_profile``, ``speaker_profile`` or
        ``source_ids`` (``details`` lists the unknown ids); a profile that is
        stored but unreadable (:class:`UnreadableProfile`) is refused the same way.
    """
    named = _named(request)
    for kind, name in named:
        field = f"{kind}_profile"
        try:
            found = read_profile(store, kind, name)
        except UnreadableProfile as exc:
            raise InvalidInput(str(exc), field=field, details={"problems": exc.problems}) from None
        if found is None:
            raise InvalidInput(f"unknown {kind} profile {name!r}", field=field)
    missing = store.missing_sources(request.source_ids)
    if missing:
        raise InvalidInput(
            f"unknown source id{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            field="source_ids",
            details={"missing": missing},
        )
    _readable.setdefault(store, set()).update(named)


def request_of(claimed: Claimed) -> GenerationRequest:
    """The generator's request for a claimed run, from what the claim read with it.

    Raises:
      GenerationError: a profile or source was deleted after the run was
        accepted, or a profile cannot be read (a permanent failure: retrying
        cannot bring it back).
    """
    run = claimed.run
    episode, speakers = (_parsed(kind, name, claimed.profiles.get(kind)) for kind, name in _named(run))
    return _assembled(run, episode, speakers, claimed.sources)


def build_request(store: Store, run: Run) -> GenerationRequest:
    """:func:`request_of` for a run read from ``store`` (the profiles and sources read one by one).

    Raises:
      GenerationError: as :func:`request_of`.
    """
    episode, speakers = (_profile(store, kind, name) for kind, name in _named(run))
    sources = [s for s in map(store.get_source, dict.fromkeys(run.source_ids)) if s is not None]
    return _assembled(run, episode, speakers, sources)


def _assembled(
    run: Run, episode: Profile | None, speakers: Profile | None, found: Sequence[Source]
) -> GenerationRequest:
    if not isinstance(episode, EpisodeProfile):
        raise GenerationError(f"episode profile {run.episode_profile!r} no longer exists")
    if not isinstance(speakers, SpeakerProfile):
        raise GenerationError(f"speaker profile {run.speaker_profile!r} no longer exists")
    by_id = {source.source_id: source for source in found}
    sources = []
    for source_id in run.source_ids:
        source = by_id.get(source_id)
        if source is None:
            raise GenerationError(f"source {source_id!r} no longer exists")
        sources.append(source)
    briefing = "\n\n".join(part for part in (episode.default_briefing, run.briefing_suffix) if part)
    return GenerationRequest(
        run_id=run.run_id,
        episode_name=run.episode_name,
        episode_profile=episode,
        speaker_profile=speakers,
        sources=sources,
        briefing=briefing,
    )


def _profile(store: Store, kind: ProfileKind, name: str) -> Profile | None:
    try:
        return read_profile(store, kind, name)
    except UnreadableProfile as exc:
        raise GenerationError(str(exc)) from None


def _parsed(kind: ProfileKind, name: str, stored: StoredProfile) -> Profile | None:
    try:
        return parse_profile(kind, name, stored)
    except UnreadableProfile as exc:
        raise GenerationError(str(exc)) from None
