"""Podcast generation: the generator interface and the built-in offline generator."""

from __future__ import annotations

from .base import GenerationContext, GenerationRequest, GenerationResult, Generator, GeneratorConfig
from .context import LocalContext

__all__ = [
    "GenerationContext",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "GeneratorConfig",
    "LocalContext",
]
