"""Inputs and results of the renewal workflow and its activities: one frozen dataclass each.

Dates travel as ISO strings. New fields go at the end, with defaults, so histories replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunMode(StrEnum):
    LIVE = "live"
    SHADOW = "shadow"  # a plan: status and price for real, no charge, no renew


@dataclass(frozen=True)
class RenewInput:
    operation_id: str
    idempotency_key: str
    domain: str
    years: int
    current_expiry: str
    customer_id: str
    mode: RunMode = RunMode.LIVE
    activity_timeout_s: float = 30.0  # start-to-close of each registry and billing call
    registry_max_attempts: int = 0  # attempts of each registry call (0: unbounded); 429s excepted


@dataclass(frozen=True)
class RenewResult:
    operation_id: str
    status: str  # done | cancelled | planned | superseded
    years: int
    new_expiry: str | None = None
    registry_transaction_id: str | None = None
    charged_cents: int | None = None
    refunded_cents: int | None = None
    currency: str | None = None
    resolved_by_status: bool = False  # the registry's own record says this renewal is done
    from_evidence: bool = False  # a rerun that found its renewal done (no renew activity ran)
    superseded_by: str | None = None  # another engine's operation has the renewal


@dataclass(frozen=True)
class DomainInput:
    operation_id: str
    domain: str


@dataclass(frozen=True)
class StatusResult:
    expiry: str
    statuses: tuple[str, ...]
    premium: bool
    renew_prohibited: bool


@dataclass(frozen=True)
class PriceInput:
    operation_id: str
    domain: str
    years: int


@dataclass(frozen=True)
class PriceResult:
    price_cents: int
    currency: str
    premium: bool


@dataclass(frozen=True)
class ChargeInput:
    operation_id: str
    idempotency_key: str
    customer_id: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class ChargeResult:
    entry_id: int
    amount_cents: int
    replayed: bool


@dataclass(frozen=True)
class RefundInput:
    operation_id: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundResult:
    amount_cents: int


@dataclass(frozen=True)
class RegistryRenewInput:
    operation_id: str
    domain: str
    current_expiry: str
    years: int
    client_tx_id: str
    verify_first: bool = False  # a renew may have been sent before: read the registry first


@dataclass(frozen=True)
class RegistryRenewResult:
    new_expiry: str
    server_tx_id: str | None
    resolved_by_status: bool = False


@dataclass(frozen=True)
class FindRenewalInput:
    """Look up the registry's renewal of this period made with our client transaction id."""

    operation_id: str
    domain: str
    current_expiry: str
    client_tx_id: str


@dataclass(frozen=True)
class FoundRenewal:
    found: bool
    new_expiry: str | None = None
    server_tx_id: str | None = None


@dataclass(frozen=True)
class PastInput:
    operation_id: str
    idempotency_key: str


@dataclass(frozen=True)
class PastResult:
    """What the database holds of this renewal: our charge under the key (net of a refund),
    and another engine's operation that has the renewal."""

    charged_cents: int | None
    currency: str | None
    superseded_by: str | None


@dataclass(frozen=True)
class PlanInput:
    operation_id: str
    workflow_id: str
    idempotency_key: str
    domain: str
    years: int
    registry_expiry: str | None
    premium: bool | None
    would_charge_cents: int | None
    currency: str | None
    expected_new_expiry: str | None
    verdict: str  # would_renew | would_refuse
    refusal: str | None = None


@dataclass(frozen=True)
class SyncInput:
    """What the database-sync interceptor writes to the operation row."""

    operation_id: str
    status: str
    workflow_id: str = ""
    run_id: str = ""
    result: RenewResult | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class CancelCheckInput:
    operation_id: str
