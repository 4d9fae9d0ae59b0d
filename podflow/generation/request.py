"""Check a run request against the store, and assemble what a generator gets."""

from __future__ import annotations

from ..errors import GenerationError, InvalidInput, UnreadableProfile
from ..models import EpisodeProfile, Run, RunRequest, SpeakerProfile
from ..profiles import read_profile
from ..store.base import Profile, ProfileKind, Store
from .base import GenerationRequest

__all__ = ["build_request", "validate_request"]


def validate_request(store: Store, request: RunRequest) -> None:
    """Refuse a request naming an unknown profile or source, before anything is stored.

    Raises:
      InvalidInput: ``field`` is ``episode_profile``, ``speaker_profile`` or
        ``source_ids`` (``details`` lists the unknown ids); a profile that is
        stored but unreadable (:class:`UnreadableProfile`) is refused the same way.
    """
    named: tuple[tuple[ProfileKind, str], ...] = (
        ("episode", request.episode_profile),
        ("speaker", request.speaker_profile),
    )
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


def build_request(store: Store, run: Run) -> GenerationRequest:
    """Load the profiles and sources ``run`` names.

    Raises:
      GenerationError: a profile or source was deleted after the run was
        accepted, or a profile cannot be read (a permanent failure: retrying
        cannot bring it back).
    """
    episode = _profile(store, "episode", run.episode_profile)
    if not isinstance(episode, EpisodeProfile):
        raise GenerationError(f"episode profile {run.episode_profile!r} no longer exists")
    speakers = _profile(store, "speaker", run.speaker_profile)
    if not isinstance(speakers, SpeakerProfile):
        raise GenerationError(f"speaker profile {run.speaker_profile!r} no longer exists")
    sources = []
    for source_id in run.source_ids:
        source = store.get_source(source_id)
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
