"""The start-up sequence every podflow entry point runs, and only they.

:func:`boot`:

1. loads and validates the settings (:func:`podflow.settings.load_settings`);
   an invalid one prints one line naming the variable and exits 78
   (``RET_CONFIG``), so systemd stops restarting a misconfigured unit
   (``RestartPreventExitStatus=78``) instead of looping;
2. sets up logging at PODFLOW_LOG_LEVEL in PODFLOW_LOG_FORMAT (``text`` or
   ``json``, :mod:`podflow.logs`): podflow's own handler, or, in processes whose
   logging Dramatiq configures (workers and their forks), the level of podflow's
   loggers and the format of Dramatiq's handlers;
3. warns once about each ``PODFLOW_*`` variable no setting reads (usually a typo),
   and once about each setting of the old Celery module that is set
   (:data:`podflow.settings.OLD_SETTINGS`: honoured, or overruled by its podflow name).
   Once per process tree: the process that warned sets :data:`WARNED_MARK` in its
   environment, and neither a later boot in it (``podflow api``'s app loader) nor
   a process it starts (``podflow worker``'s Dramatiq, ``podflow up``'s programs)
   warns again.

The entry points: ``podflow`` (:mod:`podflow.cli`), ``dramatiq podflow.actors``
(:mod:`podflow.worker.actors`), the workers' metrics exporter
(:mod:`podflow.worker.exporter`), ``uvicorn api.app:app`` and ``python -m
scheduler``. A later step of an entry point that can fail on configuration
(loading PODFLOW_GENERATOR) runs under :func:`config_errors`, so it ends the
same way. Everything below the entry points takes its settings as arguments.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from . import logs as logformat
from .errors import ConfigError
from .exitcodes import RET_CONFIG
from .settings import Settings, load_settings, old_setting_notes, unknown_variables

__all__ = ["WARNED_MARK", "LogSetup", "boot", "config_errors", "configure_logging"]

log = logging.getLogger(__name__)

#: ``configure``: podflow's log format on stderr; ``level``: the process's
#: logging is someone else's (Dramatiq's), only podflow's level is set
LogSetup = Literal["configure", "level"]

#: set (to "1") in the environment of a process that has warned about its settings;
#: no ``PODFLOW_`` prefix, so it is not itself an unknown setting
WARNED_MARK = "_PODFLOW_SETTINGS_WARNED"


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """A :class:`ConfigError` raised inside ends the process: one line on stderr, exit 78."""
    try:
        yield
    except ConfigError as exc:
        print(f"podflow: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(RET_CONFIG) from None


def configure_logging(level: str, fmt: logformat.LogFormat = "text") -> None:
    """podflow's log format (PODFLOW_LOG_FORMAT) on stderr, at ``level``."""
    logging.basicConfig(level=level, format=logformat.TEXT_FORMAT, stream=sys.stderr)
    logformat.install(logging.getLogger().handlers, fmt)


def boot(
    *,
    logs: LogSetup = "configure",
    warn_unknown: bool = True,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> Settings:
    """Run the start-up sequence (see the module docstring); the settings.

    ``environ`` is where unknown variables are looked for (the process's
    environment unless given); ``warn_unknown=False`` for a helper process
    whose parent or sibling warned already. Without ``environ``, a process whose
    environment carries :data:`WARNED_MARK` does not warn, and one that warns
    sets it.

    Raises:
      SystemExit: 78, after one line on stderr, when a setting is invalid.
    """
    with config_errors():
        settings = load_settings(env_file)
    if logs == "configure":
        configure_logging(settings.log_level, settings.log_format)
    else:
        logging.getLogger("podflow").setLevel(settings.log_level)
        logformat.install(logging.getLogger().handlers, settings.log_format)
    own = environ is None
    if warn_unknown and not (own and os.environ.get(WARNED_MARK)):
        environ = dict(os.environ if environ is None else environ)
        for note in unknown_variables(environ):
            log.warning("unknown setting %s", note)
        for note in old_setting_notes(settings, environ=environ, env_file=env_file):
            log.warning("%s", note)
        if own:
            os.environ[WARNED_MARK] = "1"
    return settings
