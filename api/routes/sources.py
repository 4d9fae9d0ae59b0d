"""Source documents: upload (JSON or a multipart file), list, get, delete.

Validation and normalisation are :func:`podflow.sources.ingest_source`'s; the
store keeps each text once (the same content again answers 200 with the
existing source, ``created: false``).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import InvalidInput, SourceNotFound
from podflow.models import Source
from podflow.settings import Settings
from podflow.sources import ingest_source

from ..limits import MULTIPART_OVERHEAD_BYTES, json_limit, limited, read_json, upload_limit
from ..routing import RouteTable
from ..schemas import SourceCreate, SourceCreated, SourceList, SourceListQuery, SourceUpload, respond, validate_json
from ..services import services

__all__ = ["routes"]

routes = RouteTable("sources")


async def _read_upload(request: Request, settings: Settings) -> dict[str, Any]:
    """The fields of a multipart upload, reading at most PODFLOW_MAX_SOURCE_BYTES plus the form's overhead."""
    form_request = limited(request, limit=upload_limit(settings))
    try:
        form = await form_request.form(max_files=1, max_fields=8, max_part_size=MULTIPART_OVERHEAD_BYTES)
    except HTTPException as exc:  # Starlette's 400 for a form it cannot parse: like malformed JSON, a 422
        raise InvalidInput(f"malformed multipart body: {exc.detail}", field="body") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("a multipart upload needs a `file` part with the document", field="file")
        title = form.get("title")
        return {
            "content": await upload.read(),
            "filename": upload.filename or "",
            "content_type": upload.content_type,
            "title": title if isinstance(title, str) and title.strip() else None,
        }
    finally:
        await form.close()


async def _read_json(request: Request, settings: Settings) -> dict[str, Any]:
    hint = f"upload a bigger source as a multipart file (up to PODFLOW_MAX_SOURCE_BYTES={settings.max_source_bytes})"
    body = validate_json(SourceCreate, await read_json(request, limit=json_limit(settings, hint=hint)))
    return body.model_dump()


@routes.post(
    "/api/sources",
    {201: SourceCreated, 200: SourceCreated},
    content={"application/json": SourceCreate, "multipart/form-data": SourceUpload},
)
async def create_source(request: Request) -> Response:
    """Add a source document: plain text, Markdown or HTML.

    As JSON `{content, title?, content_type?, filename?}` (at most
    PODFLOW_MAX_JSON_BYTES, 1 MiB by default), or as a multipart `file` (at most
    PODFLOW_MAX_SOURCE_BYTES) with an optional `title`.
    201 with the new source; 200 with the existing one (`created: false`) when the
    same text is already stored. Empty or binary content is a 422, too large a
    document a 413.
    """
    api = services(request)
    max_bytes = api.settings.max_source_bytes
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    fields = await (_read_upload(request, api.settings) if multipart else _read_json(request, api.settings))
    source = await run_in_threadpool(lambda: ingest_source(**fields, max_bytes=max_bytes, now=api.clock()))
    info, created = await run_in_threadpool(api.store.add_source, source)
    return respond(SourceCreated(**info.model_dump(), created=created), 201 if created else 200)


@routes.get("/api/sources", {200: SourceList}, query=SourceListQuery)
def list_sources(request: Request, query: SourceListQuery) -> Response:
    """List sources (without their text), newest first."""
    return respond(SourceList(sources=services(request).store.list_sources(limit=query.limit)))


@routes.get("/api/sources/{source_id}", {200: Source})
def get_source(request: Request, source_id: str) -> Response:
    """Get a source, with its text (HTML is stored reduced to text)."""
    source = services(request).store.get_source(source_id)
    if source is None:
        raise SourceNotFound(source_id)
    return respond(source)


@routes.delete("/api/sources/{source_id}", {204: None})
def delete_source(request: Request, source_id: str) -> Response:
    """Delete a source. Runs already recorded with it fail when they execute."""
    if not services(request).store.delete_source(source_id):
        raise SourceNotFound(source_id)
    return Response(status_code=204)
