"""The ``podflow`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``;
the function it sets as ``handler`` takes the parsed arguments and returns an
exit code. The start-up sequence (:func:`podflow.boot.boot`) runs here, once,
and the settings it loaded are handed to the handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from ..boot import boot
from ..errors import BrokerUnavailable, StoreUnavailable
from ..exitcodes import RET_UNAVAILABLE, RET_USAGE
from ..settings import Settings

__all__ = ["main"]

#: subcommand modules, in the order ``podflow --help`` lists them
COMMANDS = ["config", "api", "worker", "scheduler", "sweep", "status", "runs", "dead", "up", "submit"]

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return RET_USAGE
    settings = boot()
    try:
        return handler(args, settings)
    except StoreUnavailable as exc:
        return fail(f"store unavailable: {exc}", RET_UNAVAILABLE)
    except BrokerUnavailable as exc:
        return fail(f"broker unavailable: {exc}", RET_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130


