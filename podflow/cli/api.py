"""``podflow api``: serve the HTTP API with uvicorn on PODFLOW_API_HOST:PODFLOW_API_PORT.

The app is built from the settings already loaded by ``podflow``; in thread
mode it also executes the runs. ``uvicorn api.app:app`` serves the same app.
Exit codes: 0 after a clean stop (SIGTERM, Ctrl-C); 78 for an invalid
PODFLOW_GENERATOR in thread mode; 69 when the app cannot start (the store
cannot be opened, the port is taken; one line says why).
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

from ..exitcodes import RET_OK, RET_UNAVAILABLE
from ..settings import Settings

__all__ = ["register"]

#: uvicorn's exit code when the app's start-up failed or the port could not be bound
_STARTUP_FAILURE = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API (and, in thread mode, execute runs)")
    parser.set_defaults(handler=run)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The signal uvicorn hands back after its graceful shutdown: nothing more to do."""


def _on_stderr(config: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging configuration with every stream handler on stderr."""
    handlers = {
        name: {**handler, "stream": "ext://sys.stderr"} if "stream" in handler else handler
        for name, handler in config.get("handlers", {}).items()
    }
    return {**config, "handlers": handlers}


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    # By import string, as ``uvicorn api.app:app`` does: podflow/ never imports
    # the api package; the app loads the same settings from the same environment
    # (an invalid setting there exits 78 with one line).
    config = uvicorn.Config(
        "api.app:app",
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        # JSON logs: uvicorn's lines go to the root handler podflow set up, in its format;
        # text: uvicorn's own format, its access lines on stderr too (uvicorn: stdout)
        log_config=None if settings.log_format == "json" else _on_stderr(LOGGING_CONFIG),
    )
    # uvicorn re-raises the SIGTERM or SIGINT that stopped it once it has shut down,
    # under the handler it found: with the default one the process would die by the
    # signal. A handler that does nothing lets a graceful stop end as exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    try:
        uvicorn.Server(config).run()
    except SystemExit as exc:  # uvicorn exits 3 when the app cannot start or bind its port
        if exc.code == _STARTUP_FAILURE:
            return RET_UNAVAILABLE
        return int(exc.code or 0)
    return RET_OK
