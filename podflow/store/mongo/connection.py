"""The MongoDB client, its collections, and error translation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

from ...errors import StoreError, StoreUnavailable
from ..base import PROFILE_MODELS

__all__ = ["MongoConnection", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")


def guarded(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Translate pymongo's errors into podflow's."""

    @functools.wraps(method)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(store, *args, **kwargs)
        except ConnectionFailure as exc:
            raise StoreUnavailable(f"MongoDB unavailable: {exc}") from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB error: {exc}") from exc

    return wrapper


class MongoConnection:
    """The client and the collections of one database.

    Parameters:
      uri: a ``mongodb://`` connection string (ignored when ``client`` is given).
      database: the database name.
      client: an existing ``MongoClient`` (tests pass mongomock's); it must be
        ``tz_aware``. Closed by :meth:`close` only if the store created it.
      server_selection_timeout_ms: how long an operation waits for a server.
    """

    def __init__(
        self,
        uri: str = "",
        *,
        database: str = "podcast_db",
        client: Any = None,
        server_selection_timeout_ms: int = 5000,
    ) -> None:
        self._owns_client = client is None
        if client is None:
            options: dict[str, Any] = {"tz_aware": True, "appname": "podflow"}
            if "serverselectiontimeoutms" not in uri.lower():  # the URI's own value wins
                options["serverSelectionTimeoutMS"] = server_selection_timeout_ms
            client = pymongo.MongoClient(uri, **options)
        self.client: Any = client
        db = self.client[database]
        self.runs: Any = db["runs"]
        self.sources: Any = db["sources"]
        self.profiles: dict[str, Any] = {kind: db[f"{kind}_profiles"] for kind in PROFILE_MODELS}
        self.seeded: Any = db["seeded"]
        self.leases: Any = db["leases"]
        self.stats_collection: Any = db["stats"]
        self.meta: Any = db["meta"]
        self.store_id = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(database={self.runs.database.name!r})"

    @guarded
    def ping(self) -> None:
        self.client.admin.command("ping")

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
