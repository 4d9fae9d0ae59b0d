"""The LLM writer: structured-output prompts to an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

from .writer import LLMWriter

__all__ = ["LLMWriter"]
