"""What travels between us and a registry: the records its answers decode into, the clTRID we
send for a renewal key, and how an answer maps onto a record or a `RegistryError`.

The transport (timeouts, retries of reads, the calls themselves) is `renewals.registry`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from renewals.registry_errors import (
    EPP_OBJECT_NOT_FOUND,
    EPP_POLICY_ERROR,
    EPP_STATUS_PROHIBITS,
    REASON_EXPIRY_MISMATCH,
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryBadRequest,
    RegistryProtocolError,
    RegistryUnavailable,
    RenewProhibited,
)

CLTRID_MAX = 64  # RFC 5730 trIDStringType: 3 to 64 characters
_DIGEST_PREFIX = "renew-sha256-"


def epp_client_tx_id(key: str) -> str:
    """The clTRID sent for a renewal key: the key itself when it fits EPP's 64 characters,
    else a stable digest of it (a long name's key, `renew:{253-char name}:{date}`), so every
    retry and relaunch of that renewal still sends one and the same id."""
    if len(key) <= CLTRID_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return _DIGEST_PREFIX + digest[: CLTRID_MAX - len(_DIGEST_PREFIX)]


# EPP statuses (RFC 5731 §2.3) under which a renew is refused.
RENEW_PROHIBITING = frozenset({"clientRenewProhibited", "serverRenewProhibited", "pendingDelete"})


@dataclass(frozen=True)
class DomainStatus:
    domain: str
    expiry: dt.date
    statuses: tuple[str, ...]
    premium: bool

    @property
    def renew_prohibited(self) -> bool:
        return bool(RENEW_PROHIBITING.intersection(self.statuses))


@dataclass(frozen=True)
class Price:
    domain: str
    years: int
    premium: bool
    price_cents: int
    currency: str


@dataclass(frozen=True)
class RenewResult:
    domain: str
    years: int
    previous_expiry: dt.date
    new_expiry: dt.date
    server_tx_id: str
    client_tx_id: str | None


@dataclass(frozen=True)
class LedgerEntry:
    renewal_id: int
    tld: str
    domain: str
    client_tx_id: str | None
    server_tx_id: str
    years: int
    previous_expiry: dt.date
    new_expiry: dt.date
    cur_exp_date: dt.date
    created_at: dt.datetime


def ledger_entry(row: Mapping[str, Any]) -> LedgerEntry:
    """One row of a registry's renewal ledger, as its gateway answers it."""
    return LedgerEntry(
        renewal_id=int(row["renewal_id"]),
        tld=row["tld"],
        domain=row["domain"],
        client_tx_id=row.get("client_tx_id"),
        server_tx_id=row["server_tx_id"],
        years=int(row["years"]),
        previous_expiry=dt.date.fromisoformat(row["previous_expiry"]),
        new_expiry=dt.date.fromisoformat(row["new_expiry"]),
        cur_exp_date=dt.date.fromisoformat(row["cur_exp_date"]),
        created_at=dt.datetime.fromisoformat(row["created_at"]),
    )


def _date_or_none(raw: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def decode_answer(
    response: httpx.Response, where: dict[str, Any], renew: dict[str, Any] | None
) -> dict[str, Any]:
    """A 2xx answer's JSON object; any other answer as its `RegistryError`."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise RegistryProtocolError(
                f"HTTP {status} without a JSON object", http_status=status, **where
            )
        return body
    if not isinstance(body, dict):
        body = {}
    code = body.get("code") if isinstance(body.get("code"), int) else None
    message = str(body.get("message") or f"HTTP {status}")
    kw: dict[str, Any] = {"code": code, "http_status": status, **where}
    if status == 429:
        raw = response.headers.get("retry-after", body.get("retry_after"))
        try:
            retry_after = max(0.0, float(raw))
        except (TypeError, ValueError):
            retry_after = 1.0
        raise RateLimited(message, retry_after=retry_after, **kw)
    if status >= 500:
        if status == 504 and renew is not None:
            raise AmbiguousTimeout(message, **renew, **kw)
        raise RegistryUnavailable(message, **kw)
    if code == EPP_OBJECT_NOT_FOUND:
        raise DomainNotFound(message, **kw)
    if code == EPP_STATUS_PROHIBITS:
        raise RenewProhibited(message, statuses=tuple(body.get("statuses") or ()), **kw)
    if code == EPP_POLICY_ERROR:
        if body.get("reason") == REASON_EXPIRY_MISMATCH:
            raise ExpiryMismatch(
                message,
                cur_exp_date=_date_or_none(body.get("cur_exp_date")),
                current_expiry=_date_or_none(body.get("current_expiry")),
                **kw,
            )
        raise PolicyRefused(message, reason=body.get("reason"), **kw)
    if status in (400, 404, 422):
        field = body.get("field")
        if field is not None or status != 404:
            raise RegistryBadRequest(message, field=field, **kw)
    raise RegistryProtocolError(message, **kw)
