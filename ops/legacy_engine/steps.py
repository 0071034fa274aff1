"""How the legacy engine classifies what went wrong in a step."""

from __future__ import annotations

from renewals.registry_errors import (
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
    RenewProhibited,
)


class LeaseLost(Exception):
    """Another robot holds the operation now (our lease ran out): stop touching it."""

    def __init__(self, operation_id: str, owner: str) -> None:
        super().__init__(f"operation {operation_id}: lease of {owner} lost")
        self.operation_id = operation_id
        self.owner = owner


class StepFailed(Exception):
    """A failed step: transient ones are retried after a delay, permanent ones fail at once."""

    def __init__(
        self, code: str, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


def classify(exc: BaseException) -> StepFailed:
    """Registry refusals are permanent; rate limits, outages and timeouts are retried."""
    message = str(exc)
    if isinstance(exc, RateLimited):
        return StepFailed("rate_limited", message, retry_after=exc.retry_after)
    if isinstance(exc, AmbiguousTimeout):
        return StepFailed("registry_timeout", message)
    if isinstance(exc, RegistryUnavailable):
        return StepFailed("registry_unavailable", message)
    if isinstance(exc, DomainNotFound):
        return StepFailed("domain_not_found", message, permanent=True)
    if isinstance(exc, RenewProhibited):
        return StepFailed("renew_prohibited", message, permanent=True)
    if isinstance(exc, ExpiryMismatch):
        return StepFailed("expiry_mismatch", message, permanent=True)
    if isinstance(exc, PolicyRefused):
        return StepFailed("policy_refused", message, permanent=True)
    if isinstance(exc, RegistryError):
        return StepFailed("registry_error", message)
    return StepFailed("internal_error", f"{type(exc).__name__}: {message}")
