"""Process exit codes shared by every podflow entry point.

Distinct codes let systemd tell a misconfigured unit (do not restart:
``RestartPreventExitStatus=78``) from a dependency that is briefly down
(restart). Values follow BSD sysexits.h, like many daemons.
"""

from __future__ import annotations

__all__ = [
    "RET_CONFIG",
    "RET_ERROR",
    "RET_FAILED_RUN",
    "RET_OK",
    "RET_REVOKED",
    "RET_TIMEOUT",
    "RET_UNAVAILABLE",
    "RET_USAGE",
]

RET_OK = 0
#: an operation did not succeed (e.g. a followed run ended FAILURE or REVOKED)
RET_FAILED_RUN = 1
RET_REVOKED = 3  # `podflow runs wait`: the run ended REVOKED (FAILURE is RET_FAILED_RUN)
RET_TIMEOUT = 75  # EX_TEMPFAIL: `podflow runs wait --timeout` ran out, the run goes on
#: an unexpected error
RET_ERROR = 70  # EX_SOFTWARE
#: bad command-line usage
RET_USAGE = 64  # EX_USAGE
#: a dependency (store, broker, API) cannot be reached; worth restarting
RET_UNAVAILABLE = 69  # EX_UNAVAILABLE
#: invalid configuration; restarting will not help
RET_CONFIG = 78  # EX_CONFIG
