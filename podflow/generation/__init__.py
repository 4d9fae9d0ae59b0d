"""Podcast generation: the generator interface and the built-in offline generator."""

from __future__ import annotations

from ..checkpoints import Checkpoints
from .base import GenerationContext, GenerationRequest, GenerationResult, Generator, GeneratorConfig
from .context import LocalContext
from .keys import input_key

__all__ = [
    "Checkpoints",
    "GenerationContext",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "GeneratorConfig",
    "LocalContext",
    "input_key",
]
