"""Episode and speaker profiles: the same five routes for each kind.

A speaker profile's voices are checked against the speech engine
(:func:`podflow.profiles.check_speaker_profile`): an unknown voice is a 422
naming e.g. ``speakers[1].voice``. A stored profile this version cannot read
(an older one stored it) is a 409 ``unreadable_profile`` naming it, for the
listing too; replacing (PUT) or deleting it repairs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import InvalidInput, ProfileNotFound
from podflow.models import EpisodeProfile, SpeakerProfile
from podflow.profiles import check_speaker_profile, read_profile, read_profiles
from podflow.settings import Settings
from podflow.store.base import Profile, ProfileKind

from ..routing import RouteTable
from ..schemas import (
    EpisodeProfileList,
    EpisodeProfileUpdate,
    SpeakerProfileList,
    SpeakerProfileUpdate,
    respond,
    validate,
)
from ..services import services

__all__ = ["routes"]

routes = RouteTable("profiles")


def _check_episode(profile: Any, settings: Settings) -> None:
    """Episode profiles have nothing to check beyond their model."""


def _check_speakers(profile: Any, settings: Settings) -> None:
    check_speaker_profile(profile, tts=settings.tts)


def _declare(
    kind: ProfileKind,
    model: type[BaseModel],
    update: type[BaseModel],
    listing: type[EpisodeProfileList] | type[SpeakerProfileList],
    check: Callable[[Any, Settings], None],
) -> None:
    """The list, create, get, replace and delete routes of one kind of profile."""
    collection = f"/api/podcast/{kind}-profiles"
    item = collection + "/{name}"
    label = f"{kind} profile"

    def get_or_404(request: Request, name: str) -> Profile:
        profile = read_profile(services(request).store, kind, name)
        if profile is None:
            raise ProfileNotFound(name)
        return profile

    @routes.get(
        collection, {200: listing}, errors=(409,), name=f"list_{kind}_profiles", summary=f"List {label}s, by name"
    )
    def list_profiles(request: Request) -> Response:
        return respond(listing(profiles=read_profiles(services(request).store, kind)))  # type: ignore[arg-type]

    @routes.post(
        collection, {201: model}, body=model, errors=(409,), name=f"create_{kind}_profile", summary=f"Create a {label}"
    )
    def create(request: Request, body: Any) -> Response:
        api = services(request)
        check(body, api.settings)
        api.store.create_profile(body, now=api.clock())
        return respond(body, 201)

    @routes.get(item, {200: model}, errors=(409,), name=f"get_{kind}_profile", summary=f"Get a {label}")
    def get(request: Request, name: str) -> Response:
        return respond(get_or_404(request, name))

    @routes.put(
        item,
        {200: model},
        body=update,
        name=f"replace_{kind}_profile",
        summary=f"Replace a {label} (its name may be omitted)",
    )
    def replace(request: Request, name: str, body: Any) -> Response:
        if body.name is not None and body.name != name:
            raise InvalidInput(f"must be the name in the path ({name!r}) or be omitted", field="name")
        profile = validate(model, {**body.model_dump(), "name": name})
        api = services(request)
        check(profile, api.settings)
        api.store.update_profile(profile, now=api.clock())  # type: ignore[arg-type]
        return respond(profile)

    @routes.delete(item, {204: None}, name=f"delete_{kind}_profile", summary=f"Delete a {label}")
    def delete(request: Request, name: str) -> Response:
        if not services(request).store.delete_profile(kind, name):
            raise ProfileNotFound(name)
        return Response(status_code=204)


_declare("episode", EpisodeProfile, EpisodeProfileUpdate, EpisodeProfileList, _check_episode)
_declare("speaker", SpeakerProfile, SpeakerProfileUpdate, SpeakerProfileList, _check_speakers)
