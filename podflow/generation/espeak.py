"""espeak-ng, the built-in speech engine: find it, know its voices, call it.

A voice is a language (``en-us``, ``en-gb``, ``de``; any code in the
"Language" or "Other Languages" columns of ``espeak-ng --voices``), optionally
with a variant after a ``+`` (``en-us+m3``, ``en-gb+f2``; the file names of
``espeak-ng --voices=variant``). espeak-ng itself silently ignores a variant it
does not know, so podflow checks variants too, case-sensitively as espeak-ng
looks them up.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenerationError, ToolMissing

__all__ = ["INSTALL_HINT", "Voices", "available_voices", "espeak_command", "find_espeak"]

PROGRAM = "espeak-ng"
INSTALL_HINT = (
    "espeak-ng is not installed; install it with: apt-get install espeak-ng (or set PODFLOW_TTS=none)"
)
#: listing voices takes milliseconds; this only bounds a broken installation
_LIST_TIMEOUT_S = 10.0

# " 2  en-us   --/M   English_(America)  gmw/en-US   (en 3)"
_VOICE_LINE = re.compile(r"^\s*\d+\s+(\S+)\s+\S+\s+\S+\s+\S+(.*)$")
_OTHER_LANGUAGE = re.compile(r"\((\S+)\s+\d+\)")
# " 5  variant   --/M   Mr_Serious   !v/Mr serious"
_VARIANT_FILE = re.compile(r"!v/(.+?)\s*(?:\(.*)?$")


@dataclass(frozen=True, slots=True)
class Voices:
    """The voices one espeak-ng installation offers."""

    languages: frozenset[str]  # lower case
    variants: frozenset[str]

    def __contains__(self, voice: object) -> bool:
        if not isinstance(voice, str):
            return False
        language, plus, variant = voice.partition("+")
        return language.lower() in self.languages and (not plus or variant in self.variants)


def find_espeak() -> str:
    """The path of the espeak-ng program.

    Raises:
      ToolMissing: espeak-ng is not on PATH; the message says how to install it.
    """
    path = shutil.which(PROGRAM)
    if path is None:
        raise ToolMissing(INSTALL_HINT)
    return path


def available_voices() -> Voices:
    """The voices of the installed espeak-ng, listed once per program path.

    Raises:
      ToolMissing: espeak-ng is not installed.
      GenerationError: espeak-ng is installed but cannot list its voices.
    """
    return _list_voices(find_espeak())


def espeak_command(program: str, *, voice: str, text_file: Path, wav_file: Path) -> list[str]:
    """The command line that speaks ``text_file`` into ``wav_file``.

    The text goes through a file rather than argv: no length limit, and a
    turn starting with ``-`` is never taken for an option.
    """
    return [program, "-v", voice, "-w", str(wav_file), "-f", str(text_file)]


@functools.lru_cache(maxsize=4)
def _list_voices(program: str) -> Voices:
    languages: set[str] = set()
    for line in _run_listing(program, "--voices")[1:]:
        match = _VOICE_LINE.match(line)
        if match:
            languages.add(match.group(1).lower())
            languages.update(code.lower() for code in _OTHER_LANGUAGE.findall(match.group(2)))
    variants = {
        match.group(1)
        for line in _run_listing(program, "--voices=variant")[1:]
        if (match := _VARIANT_FILE.search(line))
    }
    return Voices(languages=frozenset(languages), variants=frozenset(variants))


def _run_listing(program: str, option: str) -> list[str]:
    try:
        done = subprocess.run(
            [program, option], capture_output=True, text=True, timeout=_LIST_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GenerationError(f"{PROGRAM} {option} failed: {exc}") from None
    if done.returncode != 0:
        raise GenerationError(f"{PROGRAM} {option} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.splitlines()
