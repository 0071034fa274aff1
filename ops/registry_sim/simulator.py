"""The simulator's state: per TLD a `Registry` (config, token bucket, traffic, faults); the pool."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from ops.registry_sim import store
from ops.registry_sim.faults import FaultInjector
from ops.registry_sim.models import (
    CONFIG_FIELDS,
    DEFAULT_PRICE_CENTS,
    DEFAULT_PRICES,
    RegistryConfig,
    SimError,
    bad_input,
    default_burst,
)
from ops.registry_sim.ratelimit import Clock, TokenBucket, TrafficLog
from renewals.db.pool import async_pool
from renewals.registry_errors import EPP_COMMAND_FAILED, EPP_SESSION_LIMIT, REASON_RATE_LIMITED
from renewals.settings import Settings

log = structlog.get_logger(__name__)


def field_of(loc: Iterable[Any], skip: int = 0) -> str:
    parts = [str(p) for p in loc][skip:]
    return ".".join(parts) or "body"


def effective_config(tld: str, default_rate: float, overrides: dict[str, Any]) -> RegistryConfig:
    """Defaults merged with overrides; SimError(422) naming the first bad field."""
    rate = overrides.get("rate_limit", default_rate)
    defaults: dict[str, Any] = {
        "rate_limit": default_rate,
        "burst": default_burst(rate) if isinstance(rate, int | float) else 1,
        "price_cents": DEFAULT_PRICES.get(tld, DEFAULT_PRICE_CENTS),
    }
    try:
        return RegistryConfig.model_validate({**defaults, **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise bad_input(field_of(first["loc"]), first["msg"]) from None


@dataclass
class Registry:
    tld: str
    default_rate: float
    clock: Clock
    overrides: dict[str, Any] = field(default_factory=dict)
    config: RegistryConfig = field(init=False)
    bucket: TokenBucket = field(init=False)
    traffic: TrafficLog = field(init=False)
    faults: FaultInjector = field(init=False)

    def __post_init__(self) -> None:
        self.config = effective_config(self.tld, self.default_rate, self.overrides)
        self.bucket = TokenBucket(self.config.rate_limit, self.config.burst, clock=self.clock)
        self.traffic = TrafficLog(clock=self.clock)
        self.faults = FaultInjector(self.config)

    def apply(self, overrides: dict[str, Any]) -> None:
        config = effective_config(self.tld, self.default_rate, overrides)
        limit_changed = (config.rate_limit, config.burst) != (
            self.config.rate_limit,
            self.config.burst,
        )
        self.overrides, self.config = overrides, config
        if limit_changed:
            self.bucket.configure(config.rate_limit, config.burst)
            self.traffic.limit_changed()
        self.faults = FaultInjector(config)

    def reset(self) -> None:
        self.overrides = {}
        self.__post_init__()


class Simulator:
    """Everything the routes share. `open()` connects; nothing happens at construction."""

    def __init__(
        self,
        dsn: str,
        settings: Settings,
        tlds: Iterable[str] | None = None,
        *,
        clock: Clock = time.monotonic,
        pool_size: int = 10,
    ) -> None:
        self._dsn = dsn
        self._pool: AsyncConnectionPool | None = None
        self._pool_size = pool_size
        self.registries = {
            tld: Registry(tld, settings.rate_limit(tld), clock)
            for tld in sorted(tlds if tlds is not None else settings.tlds)
        }

    async def open(self) -> None:
        self._pool = await async_pool(self._dsn, max_size=self._pool_size, name="registry_sim")
        for tld, overrides in (await store.load_overrides(self._pool)).items():
            if tld in self.registries:
                try:
                    self.registries[tld].apply(overrides)
                except SimError as exc:
                    log.warning("registry_sim.config_ignored", tld=tld, error=exc.body["message"])
        log.info("registry_sim.opened", tlds=sorted(self.registries))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise SimError(503, "simulator storage is not open", code=EPP_COMMAND_FAILED)
        return self._pool

    def registry(self, tld: str) -> Registry:
        found = self.registries.get(tld)
        if found is None:
            raise SimError(
                404,
                f"tld: no registry .{tld[:20]} (known: {', '.join(self.registries)})",
                field="tld",
            )
        return found

    async def gate(self, tld: str) -> Registry:
        """Every registry operation: rate limit (429), latency, injected errors (503)."""
        reg = self.registry(tld)
        wait = reg.bucket.try_acquire()
        if wait > 0:
            reg.traffic.record(False)
            retry_after = round(wait + 0.0005, 3)
            raise SimError(
                429,
                f"rate limit of {reg.config.rate_limit}/s exceeded",
                code=EPP_SESSION_LIMIT,
                reason=REASON_RATE_LIMITED,
                retry_after=retry_after,
                headers={"Retry-After": f"{retry_after:.3f}"},
            )
        reg.traffic.record(True)
        delay = reg.faults.latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if reg.faults.fail():
            log.debug("registry_sim.injected_error", tld=tld)
            raise SimError(503, "registry unavailable (injected)", code=EPP_COMMAND_FAILED)
        return reg

    async def configure(self, tld: str, patch: dict[str, Any]) -> RegistryConfig:
        reg = self.registry(tld)
        unknown = sorted(set(patch) - CONFIG_FIELDS)
        if unknown:
            raise bad_input(unknown[0], "unknown field")
        overrides = {**reg.overrides, **patch}
        effective_config(tld, reg.default_rate, overrides)  # validate before storing
        await store.save_overrides(self.pool, tld, overrides)
        reg.apply(overrides)
        log.info("registry_sim.configured", tld=tld, changed=sorted(patch))
        return reg.config

    async def renew(
        self, tld: str, domain: str, cur_exp_date: dt.date, years: int, client_tx_id: str | None
    ) -> dict[str, Any]:
        reg = await self.gate(tld)
        hold = reg.faults.hold_commit()
        row = await store.renew(
            self.pool,
            tld=tld,
            domain=domain,
            cur_exp_date=cur_exp_date,
            years=years,
            client_tx_id=client_tx_id,
            strict=reg.config.strict,
            today=dt.datetime.now(dt.UTC).date(),
        )
        log.info(
            "registry_sim.renewed",
            tld=tld,
            domain=domain,
            years=years,
            new_expiry=row["new_expiry"].isoformat(),
            server_tx_id=row["server_tx_id"],
            client_tx_id=client_tx_id,
            held=hold,
        )
        if hold:
            await asyncio.sleep(reg.config.hold_s)
        return row

    async def reset(self, tld: str | None) -> None:
        targets = list(self.registries.values()) if tld is None else [self.registry(tld)]
        await store.reset(self.pool, tld)
        for reg in targets:
            reg.reset()
        log.info("registry_sim.reset", tld=tld)
