"""Error types the renewal workflow and its activities raise (ApplicationError `type` values)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from renewals.registry_errors import (
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryError,
    RenewProhibited,
)

CANCEL_REQUESTED = "CancelRequested"
EXPIRY_MISMATCH = "ExpiryMismatch"
RENEW_PROHIBITED = "RenewProhibited"
DOMAIN_NOT_FOUND = "DomainNotFound"
POLICY_REFUSED = "PolicyRefused"
RATE_LIMITED = "RateLimited"
REGISTRY_UNAVAILABLE = "RegistryUnavailable"
BILLING_CONFLICT = "BillingConflict"
RENEW_IN_FLIGHT = "RenewInFlight"  # another run's renew may be at the registry: wait for it
SUPERSEDED = "Superseded"  # another engine's operation has the renewal (details: its id)
RENEWED_ELSEWHERE = "RenewedElsewhere"  # the period was renewed, not by us nor by another
# operation of ours: a business outcome (refunded if charged), never retried

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
        return ApplicationError(message, type="AmbiguousTimeout")
    return ApplicationError(message, type=REGISTRY_UNAVAILABLE)
