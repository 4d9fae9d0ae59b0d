"""The ``podflow`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``;
the function it sets as ``handler`` takes the parsed arguments and returns an
exit code. Settings are loaded here, once, and handed to the handler.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from ..errors import BrokerUnavailable, ConfigError, StoreUnavailable
from ..exitcodes import RET_CONFIG, RET_UNAVAILABLE, RET_USAGE
from ..settings import Settings, load_settings, unknown_variables

__all__ = ["main"]

#: subcommand modules, in the order ``podflow --help`` lists them
COMMANDS = ["config", "api", "worker", "scheduler", "sweep", "status", "runs", "up", "submit"]

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podflow",
        description="podflow: crash-safe podcast generation runs on Dramatiq.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def fail(message: str, code: int) -> int:
    print(f"podflow: {message}", file=sys.stderr)
    return code


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return RET_USAGE
    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(str(exc), RET_CONFIG)
    for note in unknown_variables(dict(os.environ)):
        print(f"podflow: warning: unknown setting {note}", file=sys.stderr)
    configure_logging(settings.log_level)
    try:
        return handler(args, settings)
    except StoreUnavailable as exc:
        return fail(f"store unavailable: {exc}", RET_UNAVAILABLE)
    except BrokerUnavailable as exc:
        return fail(f"broker unavailable: {exc}", RET_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130


