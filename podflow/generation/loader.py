"""Load the generator named by PODFLOW_GENERATOR (``module:callable``)."""

from __future__ import annotations

from importlib import import_module

from ..errors import ConfigError
from .base import Generator

__all__ = ["load_generator"]


def load_generator(ref: str) -> Generator:
    """Import ``package.module:callable``.

    Raises:
      ConfigError: naming PODFLOW_GENERATOR, when the module or callable is missing.
    """
    module_name, _, attr = ref.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"PODFLOW_GENERATOR={ref!r}: cannot import {module_name!r}: {exc}") from None
    generator = getattr(module, attr, None)
    if not callable(generator):
        raise ConfigError(f"PODFLOW_GENERATOR={ref!r}: {module_name!r} has no callable {attr!r}")
    return generator  # type: ignore[no-any-return,unused-ignore]
