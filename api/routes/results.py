"""A finished run's files: audio (with HTTP Range), transcript and outline.

Each is served from PODFLOW_DATA_DIR joined with the path recorded on the run
(``podflow.lifecycle.result_file`` refuses one that resolves outside it), and is a
404 until the run is SUCCESS with that file.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, MalformedRangeHeader, Response
from starlette.responses import RangeNotSatisfiable as _Unsatisfiable

from podflow import lifecycle

from ..errors import InvalidRange, RangeNotSatisfiable
from ..routing import Media, RouteTable
from ..services import services

__all__ = ["check_range", "routes"]

routes = RouteTable("results")

_BINARY = {"type": "string", "format": "binary"}
AUDIO = (Media("audio/wav", _BINARY), Media("audio/mpeg", _BINARY))
_TEXT = {"type": "string"}
DOCUMENT = (Media("application/json", {}), Media("text/plain", _TEXT), Media("text/markdown", _TEXT))
_MEDIA_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".json": "application/json", ".md": "text/markdown"}


def check_range(request: Request, size: int) -> None:
    """Refuse a Range header the file cannot satisfy, before the response starts
    (Starlette's FileResponse would answer in plain text).

    Raises:
      RangeNotSatisfiable: no requested range starts inside the file (416).
      InvalidRange: the header cannot be parsed (400).
    """
    header = request.headers.get("range")
    if header is None or "if-range" in request.headers:  # with If-Range, a stale range is ignored, not refused
        return
    try:
        FileResponse._parse_range_header(header, size)  # the parser FileResponse itself applies
    except _Unsatisfiable:
        raise RangeNotSatisfiable(size) from None
    except MalformedRangeHeader as exc:
        raise InvalidRange(exc.content) from None


def _serve(request: Request, run_id: str, name: str) -> Response:
    api = services(request)
    path = lifecycle.result_file(lifecycle.get_run(api.store, run_id), name, data_dir=api.settings.data_dir)
    check_range(request, path.stat().st_size)
    media_type = _MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    filename = f"{run_id}-{name}{Path(path).suffix}"
    return FileResponse(path, media_type=media_type, filename=filename, content_disposition_type="inline")


@routes.get("/api/podcast/runs/{run_id}/audio", {200: AUDIO, 206: AUDIO}, errors=(400, 416), name="run_audio")
def audio(request: Request, run_id: str) -> Response:
    """The episode's audio: audio/mpeg from the built-in generator (audio/wav with PODFLOW_AUDIO_FORMAT=wav).

    HTTP Range requests are answered with 206 (Accept-Ranges: bytes); a range
    beyond the file is a 416. 404 until the run is SUCCESS with audio.
    """
    return _serve(request, run_id, "audio")


@routes.get("/api/podcast/runs/{run_id}/transcript", {200: DOCUMENT}, name="run_transcript")
def transcript(request: Request, run_id: str) -> Response:
    """The episode's transcript (JSON from the built-in generator). 404 until the run is SUCCESS with one."""
    return _serve(request, run_id, "transcript")


@routes.get("/api/podcast/runs/{run_id}/outline", {200: DOCUMENT}, name="run_outline")
def outline(request: Request, run_id: str) -> Response:
    """The episode's outline (JSON from the built-in generator). 404 until the run is SUCCESS with one."""
    return _serve(request, run_id, "outline")
