"""Voices that speak a transcript, chosen by PODFLOW_TTS (see :mod:`.base`)."""

from __future__ import annotations

from .base import Clip, Voice
from .espeak import EspeakVoice
from .openai import ProviderVoice

__all__ = ["Clip", "EspeakVoice", "ProviderVoice", "Voice"]
