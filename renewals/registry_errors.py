"""Errors of the registry client. Each carries its data as attributes and survives pickling.

`retryable` says whether calling again unchanged is safe and may succeed: true only for
`RateLimited` (after `retry_after`) and `RegistryUnavailable` (the request was refused before
any effect). `AmbiguousTimeout` is not retryable: resolve it by reading the registry state.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from renewals.errors import DualrunError

# EPP result codes (RFC 5730 §3) the simulator and the client use.
EPP_PARAMETER_RANGE = 2004
EPP_PARAMETER_SYNTAX = 2005
EPP_OBJECT_NOT_FOUND = 2303
EPP_STATUS_PROHIBITS = 2304
EPP_POLICY_ERROR = 2306
EPP_COMMAND_FAILED = 2400
EPP_SESSION_LIMIT = 2502

REASON_EXPIRY_MISMATCH = "cur_exp_date_mismatch"
REASON_MAX_PERIOD = "max_period_exceeded"
REASON_RATE_LIMITED = "rate_limited"


def _rebuild(
    cls: type[RegistryError], args: tuple[Any, ...], state: dict[str, Any]
) -> RegistryError:
    obj = cls.__new__(cls)
    obj.args = args
    obj.__dict__.update(state)
    return obj


class RegistryError(DualrunError):
    """A registry call failed. `code` is the EPP result code when the registry gave one."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        domain: str | None = None,
        tld: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.domain = domain
        self.tld = tld
        self.code = code
        self.http_status = http_status

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class DomainNotFound(RegistryError):
    """The registry does not know the domain (EPP 2303)."""


class RenewProhibited(RegistryError):
    """A status on the domain forbids renewal (EPP 2304), e.g. clientRenewProhibited."""

    def __init__(self, message: str, *, statuses: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.statuses = statuses


class PolicyRefused(RegistryError):
    """The registry refused by policy (EPP 2306), e.g. the period would exceed ten years."""

    def __init__(self, message: str, *, reason: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason


class ExpiryMismatch(PolicyRefused):
    """`curExpDate` is not the current expiry (EPP 2306): this period was already renewed."""

    def __init__(
        self,
        message: str,
        *,
        cur_exp_date: dt.date | None = None,
        current_expiry: dt.date | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, reason=REASON_EXPIRY_MISMATCH, **kw)
        self.cur_exp_date = cur_exp_date
        self.current_expiry = current_expiry


class RateLimited(RegistryError):
    """The registry answered 429: wait `retry_after` seconds before the next call."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RegistryUnavailable(RegistryError):
    """5xx, or the request could not be sent (connect error, pool timeout): safe to retry."""

    retryable = True


class AmbiguousTimeout(RegistryError):
    """A renew was sent but no answer came: the registry may have committed it.

    Resolve by reading the status (expiry advanced by `years` from `cur_exp_date` means it
    succeeded); never renew again blindly.
    """

    def __init__(
        self,
        message: str,
        *,
        cur_exp_date: dt.date | None = None,
        years: int | None = None,
        client_tx_id: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.cur_exp_date = cur_exp_date
        self.years = years
        self.client_tx_id = client_tx_id


class RegistryBadRequest(RegistryError):
    """The registry rejected the request's input (4xx naming `field`): a bug on our side."""

    def __init__(self, message: str, *, field: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


class RegistryProtocolError(RegistryError):
    """The answer was not one this client understands (wrong URL, not JSON, unknown status)."""
