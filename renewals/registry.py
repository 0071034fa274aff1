"""Async client of the EPP-like registries (the simulator or a real provider's HTTP gateway).

Used by both engines. Every call maps failures onto `renewals.registry_errors`; a renew whose
answer never came raises `AmbiguousTimeout` (the registry may have committed it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from renewals.domains import tld_of
from renewals.registry_errors import (
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryBadRequest,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailable,
    RenewProhibited,
)
from renewals.registry_wire import (
    RENEW_PROHIBITING,
    DomainStatus,
    LedgerEntry,
    Price,
    RenewResult,
    decode_answer,
    epp_client_tx_id,
    ledger_entry,
)
from renewals.settings import Settings

__all__ = [
    "RENEW_PROHIBITING",
    "AmbiguousTimeout",
    "DomainNotFound",
    "DomainStatus",
    "ExpiryMismatch",
    "LedgerEntry",
    "PolicyRefused",
    "Price",
    "RateLimited",
    "RegistryBadRequest",
    "RegistryClient",
    "RegistryError",
    "RegistryProtocolError",
    "RegistryUnavailable",
    "RenewProhibited",
    "RenewResult",
    "epp_client_tx_id",
]

log = structlog.get_logger(__name__)

BaseUrl = str | Callable[[str], str]


class RegistryClient:
    """`RegistryClient(settings)`, or `RegistryClient(base_url=..., timeout_s=...)`.

    `base_url` is either the simulator's root URL (registries under `/registries/{tld}`) or a
    function tld -> base URL of that registry. Close with `aclose()` or use `async with`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        base_url: BaseUrl | None = None,
        timeout_s: float | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if base_url is None:
            if settings is None:
                raise ValueError("RegistryClient needs settings or base_url")
            self._resolve: Callable[[str], str] = settings.registry_base_url
        elif isinstance(base_url, str):
            root = base_url.rstrip("/")
            self._resolve = lambda tld: f"{root}/registries/{tld}"
        else:
            self._resolve = base_url
        if timeout_s is None:
            timeout_s = settings.registry_timeout_s if settings is not None else 10.0
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            headers={"accept": "application/json"},
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def base_url(self, tld: str) -> str:
        return self._resolve(tld).rstrip("/")

    def _domain_url(self, domain: str, suffix: str = "") -> str:
        return f"{self.base_url(tld_of(domain))}/domains/{quote(domain, safe='')}{suffix}"

    # -- operations ------------------------------------------------------------------------
    async def status(self, domain: str) -> DomainStatus:
        body = await self._call("GET", self._domain_url(domain), domain=domain)
        return DomainStatus(
            domain=body["domain"],
            expiry=dt.date.fromisoformat(body["expiry"]),
            statuses=tuple(body["statuses"]),
            premium=bool(body["premium"]),
        )

    async def price(self, domain: str, years: int) -> Price:
        url = self._domain_url(domain, "/price")
        body = await self._call("GET", url, domain=domain, params={"years": years})
        return Price(
            domain=body["domain"],
            years=int(body["years"]),
            premium=bool(body["premium"]),
            price_cents=int(body["price_cents"]),
            currency=body["currency"],
        )

    async def renew(
        self, domain: str, cur_exp_date: dt.date, years: int, client_tx_id: str | None
    ) -> RenewResult:
        payload = {
            "cur_exp_date": cur_exp_date.isoformat(),
            "years": years,
            "client_tx_id": epp_client_tx_id(client_tx_id) if client_tx_id else None,
        }
        renew_ctx = {"cur_exp_date": cur_exp_date, "years": years, "client_tx_id": client_tx_id}
        body = await self._call(
            "POST", self._domain_url(domain, "/renew"), domain=domain, json=payload, renew=renew_ctx
        )
        return RenewResult(
            domain=body["domain"],
            years=int(body["years"]),
            previous_expiry=dt.date.fromisoformat(body["previous_expiry"]),
            new_expiry=dt.date.fromisoformat(body["new_expiry"]),
            server_tx_id=body["server_tx_id"],
            client_tx_id=body.get("client_tx_id"),
        )

    async def ledger(
        self,
        tld: str | None = None,
        *,
        domain: str | None = None,
        client_tx_id: str | None = None,
        since: dt.datetime | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Renewals the registry performed (the simulator's ground truth), oldest first."""
        if tld is None:
            if domain is None:
                raise ValueError("ledger needs a tld or a domain")
            tld = tld_of(domain)
        params: dict[str, Any] = {
            k: v
            for k, v in {
                "domain": domain,
                "client_tx_id": epp_client_tx_id(client_tx_id) if client_tx_id else None,
                "since": since.isoformat() if since else None,
                "after_id": after_id,
                "limit": limit,
            }.items()
            if v is not None
        }
        body = await self._call("GET", f"{self.base_url(tld)}/ledger", tld=tld, params=params)
        return [ledger_entry(row) for row in body["renewals"]]

    async def find_renewal(
        self, domain: str, client_tx_id: str, cur_exp_date: dt.date
    ) -> LedgerEntry | None:
        """The registry's record of the renewal of this period (from `cur_exp_date`) made with
        this client transaction id, if it performed one: the evidence a renewal is ours. A
        query command: rate limited like any other (429 is RateLimited)."""
        cltrid = epp_client_tx_id(client_tx_id)
        url = self._domain_url(domain, "/renewals")
        body = await self._call("GET", url, domain=domain, params={"client_tx_id": cltrid})
        for row in body["renewals"]:
            entry = ledger_entry(row)
            if entry.cur_exp_date == cur_exp_date:
                return entry
        return None

    # -- transport and error mapping ---------------------------------------------------------
    async def _call(
        self,
        method: str,
        url: str,
        *,
        domain: str | None = None,
        tld: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        renew: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        tld = tld or (tld_of(domain) if domain else None)
        where: dict[str, Any] = {"domain": domain, "tld": tld}
        try:  # the timeout bounds the whole call, not each of httpx's phases
            response = await asyncio.wait_for(
                self._http.request(method, url, params=params, json=json), self.timeout_s
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RegistryUnavailable(
                f"registry not reachable: {type(exc).__name__}", **where
            ) from exc
        except (httpx.TransportError, TimeoutError) as exc:
            if renew is not None:
                log.warning("registry.renew_ambiguous", error=type(exc).__name__, **where)
                raise AmbiguousTimeout(
                    f"renew of {domain} sent, no answer ({type(exc).__name__} after "
                    f"{self.timeout_s}s): resolve by reading the status",
                    **renew,
                    **where,
                ) from exc
            raise RegistryUnavailable(
                f"registry call failed: {type(exc).__name__}", **where
            ) from exc
        return decode_answer(response, where, renew)
