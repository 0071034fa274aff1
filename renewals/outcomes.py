"""The error codes a failed operation carries, whichever engine wrote them, and what they mean.

Temporal's are the ApplicationError types of the workflow and its activities; the legacy
engine's are its own codes. Two kinds matter to every reader: a business refusal (the registry,
or the renewal's own state, said no: running it again cannot help) and a transient failure (rate
limited, unavailable, timed out, attempts exhausted: the engine or its provider failed, not the
renewal). Shadow comparisons, readiness and relaunch read them from here.
"""

from __future__ import annotations

# Temporal error types (ApplicationError.type); temporal_flow raises them.
CANCEL_REQUESTED = "CancelRequested"
EXPIRY_MISMATCH = "ExpiryMismatch"
RENEW_PROHIBITED = "RenewProhibited"
DOMAIN_NOT_FOUND = "DomainNotFound"
POLICY_REFUSED = "PolicyRefused"
RATE_LIMITED = "RateLimited"
REGISTRY_UNAVAILABLE = "RegistryUnavailable"
AMBIGUOUS_TIMEOUT = "AmbiguousTimeout"
BILLING_CONFLICT = "BillingConflict"
RENEW_IN_FLIGHT = "RenewInFlight"  # another run's renew may be at the registry: wait for it
SUPERSEDED = "Superseded"  # another operation has the renewal (details: its id)
RENEWED_ELSEWHERE = "RenewedElsewhere"  # renewed, not by us nor by another operation of ours

# The registry's refusals, by the legacy engine's code for the same refusal.
REFUSAL_OF_LEGACY_CODE = {
    "expiry_mismatch": EXPIRY_MISMATCH,
    "renew_prohibited": RENEW_PROHIBITED,
    "domain_not_found": DOMAIN_NOT_FOUND,
    "policy_refused": POLICY_REFUSED,
}
REGISTRY_REFUSALS = frozenset(REFUSAL_OF_LEGACY_CODE.values())

# Business outcomes: relaunching cannot change them (dualrun relaunch skips them).
BUSINESS_REFUSALS = frozenset(
    {
        *REGISTRY_REFUSALS,
        *REFUSAL_OF_LEGACY_CODE,
        BILLING_CONFLICT,
        CANCEL_REQUESTED,
        RENEWED_ELSEWHERE,
    }
)

# Transient failures of either engine: the provider or the engine, not the renewal.
TRANSIENT = frozenset(
    {
        RATE_LIMITED,
        REGISTRY_UNAVAILABLE,
        AMBIGUOUS_TIMEOUT,
        RENEW_IN_FLIGHT,
        "RelaunchFailed",
        "rate_limited",
        "registry_timeout",
        "registry_unavailable",
        "registry_error",
        "internal_error",
    }
)


def refusal(code: str | None) -> str | None:
    """The registry refusal a code stands for (in Temporal's words), else None."""
    if code in REGISTRY_REFUSALS:
        return code
    return REFUSAL_OF_LEGACY_CODE.get(code or "")


def is_transient(code: str | None) -> bool:
    return code in TRANSIENT
