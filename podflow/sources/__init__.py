"""Source documents: upload validation and normalisation, and markup reduced to prose."""

from __future__ import annotations

from .ingest import CONTENT_TYPES, EXTENSIONS, ingest_source, resolve_content_type, source_prose

__all__ = ["CONTENT_TYPES", "EXTENSIONS", "ingest_source", "resolve_content_type", "source_prose"]
