"""Run a child in a session of its own and relay stop signals to it, to it alone."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from types import FrameType

__all__ = ["RELAYED", "run_relaying"]

#: the signals relayed to the child
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_relaying(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, translate: Mapping[int, int] | None = None
) -> tuple[int, bool]:
    """Run ``argv`` in a new session; SIGINT, SIGTERM and SIGHUP received here
    are sent to the child's main process only (``translate`` may map one to
    another). Returns its exit code (128 + N for signal N) and whether a stop
    signal was relayed.

    Why a session of its own: a process manager that signals our whole process
    group (honcho, a terminal's Ctrl-C) would otherwise reach the child's own
    children too, besides whatever the child sends them itself.
    """
    translate = translate or {}
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env), start_new_session=True)
    relayed = False

    def relay(signum: int, frame: FrameType | None) -> None:
        nonlocal relayed
        relayed = True
        proc.send_signal(translate.get(signum, signum))

    previous = {sig: signal.signal(sig, relay) for sig in RELAYED}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return (128 - code if code < 0 else code), relayed
