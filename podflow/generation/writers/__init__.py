"""Writers of outlines and transcripts, chosen by PODFLOW_LLM (see :mod:`.base`)."""

from __future__ import annotations

from .base import OutlineJob, TranscriptJob, Writer
from .extractive import ExtractiveWriter

__all__ = ["ExtractiveWriter", "OutlineJob", "TranscriptJob", "Writer"]
