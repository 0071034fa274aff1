"""Error types the renewal workflow and its activities raise (ApplicationError `type` values)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from renewals.outcomes import (
    AMBIGUOUS_TIMEOUT,
    BILLING_CONFLICT,
    CANCEL_REQUESTED,
    DOMAIN_NOT_FOUND,
    EXPIRY_MISMATCH,
    POLICY_REFUSED,
    RATE_LIMITED,
    REGISTRY_UNAVAILABLE,
    RENEW_PROHIBITED,
    RENEWED_ELSEWHERE,
    SUPERSEDED,
)
from renewals.registry_errors import (
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryError,
    RenewProhibited,
)

# Business refusals: retrying cannot help.
NON_RETRYABLE = (
    CANCEL_REQUESTED,
    EXPIRY_MISMATCH,
    RENEW_PROHIBITED,
    DOMAIN_NOT_FOUND,
    POLICY_REFUSED,
    BILLING_CONFLICT,
    SUPERSEDED,
    RENEWED_ELSEWHERE,
)
# Refusals of the registry renew itself, after the charge: the charge is refunded.
RENEW_REFUSALS = (EXPIRY_MISMATCH, RENEW_PROHIBITED, DOMAIN_NOT_FOUND, POLICY_REFUSED)


def to_application_error(exc: RegistryError) -> ApplicationError:
    """Map a registry error to the ApplicationError the workflow's retry policy acts on."""
    message = str(exc)
    if isinstance(exc, RateLimited):
        return ApplicationError(
            message,
            type=RATE_LIMITED,
            next_retry_delay=timedelta(seconds=max(exc.retry_after, 0.05)),
        )
    if isinstance(exc, ExpiryMismatch):
        return ApplicationError(message, type=EXPIRY_MISMATCH, non_retryable=True)
    if isinstance(exc, RenewProhibited):
        return ApplicationError(message, type=RENEW_PROHIBITED, non_retryable=True)
    if isinstance(exc, DomainNotFound):
        return ApplicationError(message, type=DOMAIN_NOT_FOUND, non_retryable=True)
    if isinstance(exc, PolicyRefused):
        return ApplicationError(message, type=POLICY_REFUSED, non_retryable=True)
    if isinstance(exc, AmbiguousTimeout):  # resolved by the caller before reaching here
        return ApplicationError(message, type=AMBIGUOUS_TIMEOUT)
    return ApplicationError(message, type=REGISTRY_UNAVAILABLE)
