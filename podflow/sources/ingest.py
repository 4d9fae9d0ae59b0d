"""Source documents: validate an upload and normalise it into a :class:`Source`.

Accepted: plain text, Markdown (stored as Markdown; :func:`source_prose` gives
the plain prose generators read) and HTML (stored reduced to text). The type
comes from the explicit content type, else the filename's extension, else it
is plain text; anything else is refused.

Refused, with :class:`podflow.errors.InvalidInput` naming the field (``file``
for an upload with a filename, else ``content``; ``content_type`` or
``filename`` for an unknown type):

- more than ``max_bytes`` bytes (:class:`SourceTooLarge`), checked first;
- binary data: NUL bytes, bytes that are not valid in the charset (UTF-8 by
  default), or more than 5% control characters;
- nothing but whitespace (or markup, scripts and code) once reduced to text.

The stored text is NFC-normalised, with ``\\n`` line ends, no BOM, no control
characters but tab and newline, and no trailing spaces; ``sha256`` is the hash
of that text, so the store keeps the same document once however it arrived.
``byte_size`` is the size of the document as uploaded.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal

from ..errors import InvalidInput, SourceTooLarge
from ..models import Source, new_source_id
from .html import html_to_text
from .markdown import markdown_prose, markdown_to_text

__all__ = ["CONTENT_TYPES", "EXTENSIONS", "ingest_source", "resolve_content_type", "source_prose"]

ContentType = Literal["text/plain", "text/markdown", "text/html"]

#: accepted content types (and common aliases) → the stored one
CONTENT_TYPES: dict[str, ContentType] = {
    "text/plain": "text/plain",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
    "text/html": "text/html",
    "application/xhtml+xml": "text/html",
}
#: filename extensions → content type, used when no content type is given
EXTENSIONS: dict[str, ContentType] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
}
#: content types that say nothing (browsers send them for unknown files)
_VAGUE = frozenset({"", "application/octet-stream", "binary/octet-stream"})

_MAX_CONTROL_RATIO = 0.05
_MAX_TITLE_CHARS = 200
_TITLE_WORDS = 8
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def resolve_content_type(content_type: str | None, filename: str | None) -> ContentType:
    """The stored content type for an upload.

    Raises:
      InvalidInput: ``field="content_type"`` for an unsupported explicit type,
        ``field="filename"`` when the extension is unknown and no type is given.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in _VAGUE:
        if media_type not in CONTENT_TYPES:
            raise InvalidInput(
                f"unsupported content type {media_type!r}; use one of: {', '.join(sorted(CONTENT_TYPES))}",
                field="content_type",
            )
        return CONTENT_TYPES[media_type]
    if filename:
        suffix = PurePosixPath(_basename(filename)).suffix.lower()
        if suffix not in EXTENSIONS:
            raise InvalidInput(
                f"cannot tell the type of {_basename(filename)!r}: supported extensions are "
                f"{', '.join(EXTENSIONS)} (or give content_type)",
                field="filename",
            )
        return EXTENSIONS[suffix]
    return "text/plain"


def ingest_source(
    *,
    content: bytes | str,
    title: str | None,
    filename: str | None,
    content_type: str | None,
    max_bytes: int,
    now: datetime,
) -> Source:
    """Validate and normalise a document into a :class:`Source` (not yet stored).

    Raises:
      SourceTooLarge: more than ``max_bytes`` bytes.
      InvalidInput: unknown type, binary content, or no text at all.
    """
    field = "file" if filename is not None else "content"
    raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if len(raw) > max_bytes:
        raise SourceTooLarge(
            f"source too large: {len(raw)} bytes > PODFLOW_MAX_SOURCE_BYTES={max_bytes}", field=field
        )
    kind = resolve_content_type(content_type, filename)
    text = _normalise(content if isinstance(content, str) else _decode(raw, content_type, field), field)
    found_title: str | None = None
    if kind == "text/html":
        converted = html_to_text(text)
        text, found_title = _normalise(converted.text, field), converted.title
        prose = text
    elif kind == "text/markdown":
        prose, found_title = markdown_prose(text)
    else:
        prose = text
    if not prose.strip():
        raise InvalidInput("source is empty: it contains no text", field=field)
    name = _basename(filename) if filename else None
    return Source(
        source_id=new_source_id(),
        title=_title(title, found_title, name, prose),
        filename=name,
        content_type=kind,
        byte_size=len(raw),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        created_at=now,
        text=text,
    )


def source_prose(source: Source) -> str:
    """The source as plain prose for a generator: Markdown markup removed;
    plain text and (already reduced) HTML as stored."""
    return markdown_to_text(source.text) if source.content_type == "text/markdown" else source.text


# -- helpers -----------------------------------------------------------------------


def _basename(filename: str) -> str:
    """The last path component, whichever separator the client's OS uses."""
    return PureWindowsPath(PurePosixPath(filename).name).name[:255]


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
            try:
                codecs.lookup(charset)
            except LookupError:
                raise InvalidInput(f"unknown charset {charset!r}", field="content_type") from None
            return "utf-8-sig" if charset in ("utf-8", "utf8") else charset
    return "utf-8-sig"  # UTF-8, dropping a byte-order mark


def _decode(raw: bytes, content_type: str | None, field: str) -> str:
    charset = _charset(content_type)
    if b"\x00" in raw and not charset.startswith("utf-16") and not charset.startswith("utf-32"):
        raise _not_text(field, "it contains NUL bytes")
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise _not_text(field, f"invalid {charset.removesuffix('-sig')} at byte {exc.start}") from None


def _not_text(field: str, why: str) -> InvalidInput:
    return InvalidInput(f"source is not text (binary data?): {why}", field=field)


def _normalise(text: str, field: str) -> str:
    if "\x00" in text:
        raise _not_text(field, "it contains NUL characters")
    controls = len(_CONTROL.findall(text))
    if text and controls / len(text) > _MAX_CONTROL_RATIO:
        raise _not_text(field, f"{controls} of its {len(text)} characters are control characters")
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING.sub("", _CONTROL.sub("", text))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _title(explicit: str | None, found: str | None, filename: str | None, prose: str) -> str:
    for candidate in (explicit, found, PurePosixPath(filename).stem if filename else None):
        if candidate and candidate.strip():
            return _clip(" ".join(candidate.split()))
    words = prose.split()
    return _clip(" ".join(words[:_TITLE_WORDS]) + (" …" if len(words) > _TITLE_WORDS else ""))


def _clip(title: str) -> str:
    return title if len(title) <= _MAX_TITLE_CHARS else title[: _MAX_TITLE_CHARS - 1].rstrip() + "…"
