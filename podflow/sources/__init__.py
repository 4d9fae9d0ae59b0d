"""Source documents: what an upload may be, and the prose generators read from it.

- ``ingest.py``: validate and normalise an upload into a :class:`~podflow.models.Source`,
  and :func:`source_prose`, the plain text a generator reads;
- ``html.py`` and ``markdown.py``: markup reduced to prose, in the shape
  ``prose.py`` describes (paragraphs, headings, list items as sentences).
"""

from __future__ import annotations

from .html import HtmlText, html_to_text
from .ingest import CONTENT_TYPES, EXTENSIONS, ingest_source, resolve_content_type, source_prose
from .markdown import markdown_title, markdown_to_text

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "HtmlText",
    "html_to_text",
    "ingest_source",
    "markdown_title",
    "markdown_to_text",
    "resolve_content_type",
    "source_prose",
]
