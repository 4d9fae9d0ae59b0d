"""Provider failures: the errors podflow raises, and the one place SDK errors are classified.

Every failure of a provider call is classified once, by :func:`classify`, into
what the in-attempt retry layer (:mod:`.calls`) does with it:

=====================================  =============  ==========================================
failure                                kind           what happens
=====================================  =============  ==========================================
429                                    rate_limited   waited out in the attempt (never sooner
                                                      than ``Retry-After``), up to a bound
5xx, 408, 409, 425, timeouts,          transient      a few in-attempt retries with backoff,
connection errors                                     then :class:`ProviderUnavailable`
400, 401, 403, 404, 422, other 4xx     permanent      :class:`ProviderRejected` at once, naming
                                                      the setting to fix
=====================================  =============  ==========================================

The exceptions join podflow's tree under :class:`~podflow.errors.GenerationError`::

    GenerationError                  permanent: the run fails at once
    ├── ProviderRejected             a 4xx: fix the setting the message names
    ├── UnusableReply                the LLM's reply failed validation after re-asks
    └── TransientGenerationError     the run is retried (a new attempt, with backoff)
        ├── ProviderUnavailable      5xx/timeouts past PODFLOW_PROVIDER_RETRIES
        └── ProviderRateLimited      429s past PODFLOW_PROVIDER_RATE_LIMIT_WAIT
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from ...errors import GenerationError, TransientGenerationError
from .endpoint import Endpoint
from .policy import retry_after_s

if TYPE_CHECKING:  # the SDK (about a second and tens of MiB to import) loads with the first provider
    # call, not with every worker: see tests/test_imports.py
    import openai

__all__ = [
    "Failure",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderUnavailable",
    "UnusableReply",
    "classify",
]

FailureKind = Literal["rate_limited", "transient", "permanent"]
_TRANSIENT_4XX = frozenset({408, 409, 425})
_DETAIL_CHARS = 300


class ProviderRejected(GenerationError):
    """The provider refused the request (a 4xx other than 429): retrying cannot help."""


class UnusableReply(GenerationError):
    """The LLM's replies failed validation every time it was asked."""


class ProviderUnavailable(TransientGenerationError):
    """5xx, timeouts or connection errors outlasted the in-attempt retries."""


class ProviderRateLimited(TransientGenerationError):
    """The provider kept answering 429 past PODFLOW_PROVIDER_RATE_LIMIT_WAIT."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What one failed call means. ``message`` is one line naming what to fix."""

    kind: FailureKind
    message: str
    status: int | None = None
    #: the wait the provider asked for (``Retry-After`` / ``retry-after-ms``), if any
    retry_after_s: float | None = None
    #: how the call ended, for ``/metrics``: 429, 5xx, 4xx, timeout or connection
    outcome: str = "4xx"

    def error(self) -> GenerationError:
        """The exception that ends the attempt (or the run) with this failure."""
        if self.kind == "permanent":
            return ProviderRejected(self.message)
        if self.kind == "rate_limited":
            return ProviderRateLimited(self.message)
        return ProviderUnavailable(self.message)


def classify(
    exc: BaseException, endpoint: Endpoint, *, now: datetime, model: str | None = None, voice: str | None = None
) -> Failure | None:
    """What ``exc``, raised by a call to ``endpoint``, means; None if it is no provider error.

    ``model`` is the model the call asked for (a profile's ``llm_model`` or
    ``tts_model``; None: the endpoint's, PODFLOW_*_MODEL), so a refusal names the
    model actually called; ``voice`` (speech calls) lets it name the voice;
    ``now`` reads a ``Retry-After`` given as an HTTP date.
    """
    import openai  # loaded already: the call that raised ``exc`` used it
    if isinstance(exc, openai.APITimeoutError):
        message = f"{endpoint.label} did not answer within {endpoint.timeout_s:g} s ({endpoint.setting('timeout')})"
        return Failure("transient", message, outcome="timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        reason = _detail(str(cause) or type(cause).__name__)
        message = f"{endpoint.label} unreachable: {reason} (check {endpoint.setting('base_url')})"
        return Failure("transient", message, outcome="connection")
    if not isinstance(exc, openai.APIStatusError):
        return None
    status = exc.status_code
    detail = _detail(_provider_message(exc))
    wait = retry_after_s(exc.response.headers, now=now)
    if status == 429:
        return Failure("rate_limited", f"{endpoint.label} answered 429: {detail}", status, wait, outcome="429")
    outcome = "5xx" if status >= 500 else "4xx"
    if status >= 500 or status in _TRANSIENT_4XX:
        return Failure("transient", f"{endpoint.label} answered {status}: {detail}", status, wait, outcome=outcome)
    refusal = _refusal(endpoint, status, detail, model or endpoint.model, voice)
    return Failure("permanent", refusal, status, outcome=outcome)


def _refusal(endpoint: Endpoint, status: int, detail: str, model: str, voice: str | None) -> str:
    profile_field = "llm_model" if endpoint.kind == "llm" else "tts_model"
    if status == 401:
        return f"{endpoint.label} answered 401: check {endpoint.setting('api_key')} ({detail})"
    if status == 403:
        return f"{endpoint.label} answered 403 for model '{model}': check {endpoint.setting('api_key')} ({detail})"
    if endpoint.kind == "tts" and voice is not None and "voice" in detail.lower():
        return (
            f"TTS voice '{voice}' unknown to {model} at {endpoint.base_url}: use one of its voices "
            f"in the speaker profile ({status}: {detail})"
        )
    if status == 404:
        return (
            f"{endpoint.label} answered 404 for model '{model}': check {endpoint.setting('model')} "
            f"(or the profile's {profile_field}) and {endpoint.setting('base_url')}, which ends in /v1 ({detail})"
        )
    hint = (
        "the model must support structured output (response_format json_schema)"
        if endpoint.kind == "llm"
        else "and the speaker profile's voices"
    )
    return (
        f"{endpoint.label} refused the request ({status}: {detail}): check {endpoint.setting('model')} "
        f"(or the profile's {profile_field}); {hint}"
    )


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(message, dict):  # {"error": {"message": ...}} unwrapped one level too few
            message = message.get("message")
        if message:
            return str(message)
    text = exc.response.text if exc.response is not None else ""
    return text.strip() or exc.message


def _detail(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"
