"""Request bodies, the per-registry configuration and the simulator's error type."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from renewals.registry_errors import EPP_PARAMETER_SYNTAX

Years = Annotated[StrictInt, Field(ge=1, le=10)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, le=600_000.0, allow_inf_nan=False)]

EppStatus = Literal[
    "ok",
    "clientDeleteProhibited",
    "clientHold",
    "clientRenewProhibited",
    "clientTransferProhibited",
    "clientUpdateProhibited",
    "inactive",
    "pendingCreate",
    "pendingDelete",
    "pendingRenew",
    "pendingTransfer",
    "pendingUpdate",
    "serverDeleteProhibited",
    "serverHold",
    "serverRenewProhibited",
    "serverTransferProhibited",
    "serverUpdateProhibited",
]

# Standard yearly renewal prices in euro cents; other TLDs get DEFAULT_PRICE_CENTS.
DEFAULT_PRICES: dict[str, int] = {"com": 1299, "de": 799, "eu": 899, "fr": 1099, "info": 1599}
DEFAULT_PRICE_CENTS = 1000
PREMIUM_TIERS_CENTS = (2_500, 5_000, 10_000, 50_000)
MAX_SEED = 1_000_000


class SimError(Exception):
    """An HTTP error answer: status, JSON body (always with `message`) and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        body: dict[str, Any] = {"message": message, "code": code}
        if field is not None:
            body["field"] = field
        body.update(extra)
        self.body = body


def bad_input(field: str, problem: str, status: int = 422) -> SimError:
    return SimError(status, f"{field}: {problem}", code=EPP_PARAMETER_SYNTAX, field=field)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistryConfig(_Strict):
    """The effective configuration of one registry (defaults merged with stored overrides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict: StrictBool = True
    rate_limit: Annotated[float, Field(gt=0.0, le=1_000_000.0, allow_inf_nan=False)]
    burst: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    latency_ms: NonNegative = 0.0
    latency_jitter_ms: NonNegative = 0.0
    error_rate: Fraction = 0.0
    commit_timeout_rate: Fraction = 0.0
    hold_s: Annotated[float, Field(ge=0.0, le=3600.0, allow_inf_nan=False)] = 30.0
    seed: StrictInt | None = None
    price_cents: Annotated[StrictInt, Field(ge=0, le=100_000_000)]
    currency: Literal["EUR"] = "EUR"


CONFIG_FIELDS = frozenset(RegistryConfig.model_fields)


def default_burst(rate: float) -> int:
    """One second's worth of requests, at least one."""
    return max(1, math.ceil(rate))


class RenewBody(_Strict):
    cur_exp_date: dt.date
    years: Years
    # EPP's clTRID (RFC 5730 trIDStringType): a real registry refuses a longer one.
    client_tx_id: Annotated[str, Field(min_length=3, max_length=64)] | None = None


class SeedDomain(_Strict):
    domain: str
    expiry: dt.date
    premium_cents: Annotated[StrictInt, Field(ge=0, le=100_000_000)] | None = None
    statuses: list[EppStatus] = Field(default_factory=list, max_length=20)


class SeedBody(_Strict):
    """Either explicit `domains`, or `count` generated ones named `{prefix}{n:06d}.{tld}`."""

    domains: Annotated[list[SeedDomain], Field(max_length=MAX_SEED)] | None = None
    count: Annotated[StrictInt, Field(ge=1, le=MAX_SEED)] | None = None
    prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")] = "dom-"
    start: Annotated[StrictInt, Field(ge=0, le=9_000_000)] = 1
    expiry_from: dt.date | None = None
    expiry_to: dt.date | None = None
    premium_share: Fraction = 0.0
    prohibited_share: Fraction = 0.0
    seed: StrictInt | None = None
