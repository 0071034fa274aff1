"""Clients of the simulator's controls (seed, config, traffic, ledger, reset).

`SimAdmin` (blocking, for the CLI and sync tests) and `AsyncSimAdmin` (for async tests and
demos) share one request builder. Errors: `SimAdminError` (with `status`, `field`) for 4xx/5xx
answers, `SimUnreachable` when nothing answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from renewals.errors import DualrunError
from renewals.settings import Settings


class SimAdminError(DualrunError):
    def __init__(self, status: int, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class SimUnreachable(DualrunError):
    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"registry simulator not reachable at {url}: {problem}")
        self.url = url


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    params: dict[str, Any] | None = None
    json: Any = None


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _result(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:200]}
    if response.status_code >= 400:
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or f"HTTP {response.status_code}")
        raise SimAdminError(response.status_code, message, body.get("field"))
    if not isinstance(body, dict):
        raise SimAdminError(response.status_code, "answer is not a JSON object", None)
    return body


class Calls:
    """Builds the requests; `base_url` is the simulator's root URL or a tld -> registry URL."""

    def __init__(self, base_url: str | Callable[[str], str], root_url: str | None = None) -> None:
        if isinstance(base_url, str):
            root = base_url.rstrip("/")
            self._registry: Callable[[str], str] = lambda tld: f"{root}/registries/{tld}"
            self.root: str | None = root
        else:
            self._registry = base_url
            self.root = root_url.rstrip("/") if root_url else None

    def at(self, tld: str, path: str = "") -> str:
        return f"{self._registry(tld).rstrip('/')}{path}"

    def _root(self, path: str) -> str:
        if self.root is None:
            raise ValueError(f"{path} needs the simulator's root URL")
        return f"{self.root}{path}"

    def health(self) -> Call:
        return Call("GET", self._root("/healthz"))

    def summary(self, tld: str) -> Call:
        return Call("GET", self.at(tld))

    def seed_domains(self, tld: str, domains: Iterable[Mapping[str, Any]]) -> Call:
        items = [{k: _plain(v) for k, v in d.items()} for d in domains]
        return Call("POST", self.at(tld, "/seed"), json={"domains": items})

    def seed_generated(self, tld: str, count: int, options: Mapping[str, Any]) -> Call:
        body = {k: _plain(v) for k, v in {"count": count, **options}.items() if v is not None}
        return Call("POST", self.at(tld, "/seed"), json=body)

    def config(self, tld: str) -> Call:
        return Call("GET", self.at(tld, "/config"))

    def configure(self, tld: str, changes: Mapping[str, Any]) -> Call:
        return Call("PUT", self.at(tld, "/config"), json=dict(changes))

    def traffic(self, tld: str, since: int | None) -> Call:
        return Call(
            "GET", self.at(tld, "/traffic"), params={} if since is None else {"since": since}
        )

    def ledger(self, tld: str, filters: Mapping[str, Any]) -> Call:
        params = {k: _plain(v) for k, v in filters.items() if v is not None}
        return Call("GET", self.at(tld, "/ledger"), params=params)

    def reset(self, tld: str | None) -> Call:
        return Call("POST", self.at(tld, "/reset") if tld else self._root("/reset"))


def _root_of(settings: Settings) -> str:
    return settings.registry_url or f"http://127.0.0.1:{settings.registry_sim_port}"


class SimAdmin:
    """Blocking: `SimAdmin("http://127.0.0.1:8710")` or `SimAdmin.for_settings(settings)`."""

    def __init__(
        self,
        base_url: str | Callable[[str], str],
        *,
        root_url: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.calls = Calls(base_url, root_url)
        self._http = httpx.Client(timeout=timeout_s)

    @classmethod
    def for_settings(cls, settings: Settings, timeout_s: float = 120.0) -> SimAdmin:
        return cls(settings.registry_base_url, root_url=_root_of(settings), timeout_s=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimAdmin:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(self, call: Call) -> dict[str, Any]:
        try:
            response = self._http.request(call.method, call.url, params=call.params, json=call.json)
        except httpx.TransportError as exc:
            raise SimUnreachable(call.url, type(exc).__name__) from exc
        return _result(response)

    def health(self) -> dict[str, Any]:
        return self.send(self.calls.health())

    def summary(self, tld: str) -> dict[str, Any]:
        """Counts of domains and renewals, and the configuration."""
        return self.send(self.calls.summary(tld))

    def seed_domains(self, tld: str, domains: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Upsert explicit domains: {"domain", "expiry", "premium_cents"?, "statuses"?}."""
        return self.send(self.calls.seed_domains(tld, domains))

    def seed_generated(self, tld: str, count: int, **options: Any) -> dict[str, Any]:
        """`count` generated domains; options: prefix, start, expiry_from, expiry_to,
        premium_share, prohibited_share, seed."""
        return self.send(self.calls.seed_generated(tld, count, options))

    def config(self, tld: str) -> dict[str, Any]:
        return self.send(self.calls.config(tld))

    def configure(self, tld: str, **changes: Any) -> dict[str, Any]:
        """Set some of: strict, rate_limit, burst, latency_ms, latency_jitter_ms, error_rate,
        commit_timeout_rate, hold_s, seed, price_cents."""
        return self.send(self.calls.configure(tld, changes))

    def traffic(self, tld: str, since: int | None = None) -> dict[str, Any]:
        return self.send(self.calls.traffic(tld, since))

    def ledger(self, tld: str, **filters: Any) -> list[dict[str, Any]]:
        return list(self.send(self.calls.ledger(tld, filters))["renewals"])

    def reset(self, tld: str | None = None) -> dict[str, Any]:
        return self.send(self.calls.reset(tld))


class AsyncSimAdmin:
    """The same controls for async code: `async with AsyncSimAdmin(url) as admin: ...`."""

    def __init__(
        self,
        base_url: str | Callable[[str], str],
        *,
        root_url: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.calls = Calls(base_url, root_url)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    @classmethod
    def for_settings(cls, settings: Settings, timeout_s: float = 120.0) -> AsyncSimAdmin:
        return cls(settings.registry_base_url, root_url=_root_of(settings), timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSimAdmin:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send(self, call: Call) -> dict[str, Any]:
        try:
            response = await self._http.request(
                call.method, call.url, params=call.params, json=call.json
            )
        except httpx.TransportError as exc:
            raise SimUnreachable(call.url, type(exc).__name__) from exc
        return _result(response)

    async def health(self) -> dict[str, Any]:
        return await self.send(self.calls.health())

    async def summary(self, tld: str) -> dict[str, Any]:
        return await self.send(self.calls.summary(tld))

    async def seed_domains(self, tld: str, domains: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return await self.send(self.calls.seed_domains(tld, domains))

    async def seed_generated(self, tld: str, count: int, **options: Any) -> dict[str, Any]:
        return await self.send(self.calls.seed_generated(tld, count, options))

    async def config(self, tld: str) -> dict[str, Any]:
        return await self.send(self.calls.config(tld))

    async def configure(self, tld: str, **changes: Any) -> dict[str, Any]:
        return await self.send(self.calls.configure(tld, changes))

    async def traffic(self, tld: str, since: int | None = None) -> dict[str, Any]:
        return await self.send(self.calls.traffic(tld, since))

    async def ledger(self, tld: str, **filters: Any) -> list[dict[str, Any]]:
        return list((await self.send(self.calls.ledger(tld, filters)))["renewals"])

    async def reset(self, tld: str | None = None) -> dict[str, Any]:
        return await self.send(self.calls.reset(tld))
