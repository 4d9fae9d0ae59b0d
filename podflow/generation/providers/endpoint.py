"""An OpenAI-compatible endpoint: where a provider is, and which settings name it.

``base_url`` is what the ``openai`` SDK calls ``base_url``: it ends in ``/v1``
(``https://api.openai.com/v1``, ``http://localhost:11434/v1``), so calls go to
``{base_url}/chat/completions`` and ``{base_url}/audio/speech``, with the API
key as a bearer token. Error messages name the settings to fix, so an
endpoint knows them (``PODFLOW_LLM_API_KEY``...).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Endpoint", "Kind"]

Kind = Literal["llm", "tts"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider endpoint, configured from PODFLOW_LLM_* or PODFLOW_TTS_*."""

    kind: Kind
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    #: seconds one request may take (PODFLOW_LLM_TIMEOUT, PODFLOW_TTS_TIMEOUT)
    timeout_s: float = 300.0

    @property
    def label(self) -> str:
        """``LLM at <base_url>`` / ``TTS at <base_url>``, for messages."""
        return f"{self.kind.upper()} at {self.base_url}"

    def setting(self, name: str) -> str:
        """The environment variable behind ``name`` (``api_key`` -> ``PODFLOW_LLM_API_KEY``)."""
        return f"PODFLOW_{self.kind.upper()}_{name.upper()}"

    @property
    def slot_name(self) -> str:
        """The name its concurrency slots go by: the kind and a digest of the URL,
        so that two endpoints never share a cap and a changed URL starts afresh."""
        digest = hashlib.sha256(self.base_url.rstrip("/").encode()).hexdigest()[:8]
        return f"{self.kind}:{digest}"
