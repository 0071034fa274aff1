"""The registry simulator over real HTTP (in-process server, real PostgreSQL) and its client."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog

from dualrun.cli.main import run
from ops.registry_sim.admin import AsyncSimAdmin, SimAdmin
from ops.registry_sim.server import SimServer
from renewals.model import add_years, idempotency_key
from renewals.registry import (
    AmbiguousTimeout,
    DomainNotFound,
    ExpiryMismatch,
    PolicyRefused,
    RateLimited,
    RegistryBadRequest,
    RegistryClient,
    RegistryUnavailable,
    RenewProhibited,
    epp_client_tx_id,
)

pytestmark = pytest.mark.integration

TODAY = dt.datetime.now(dt.UTC).date()
EXPIRY = TODAY + dt.timedelta(days=30)


@pytest.fixture
async def admin(sim: SimServer) -> AsyncIterator[AsyncSimAdmin]:
    async with AsyncSimAdmin(sim.url) as client:
        yield client


@pytest.fixture
async def registry(sim: SimServer) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(base_url=sim.url, timeout_s=5.0) as client:
        yield client


async def seed_one(
    admin: AsyncSimAdmin, domain: str, expiry: dt.date = EXPIRY, **extra: Any
) -> None:
    tld = domain.rsplit(".", 1)[1]
    await admin.seed_domains(tld, [{"domain": domain, "expiry": expiry, **extra}])


async def test_strict_replay_is_refused_and_expiry_moves_once(
    admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """On a strict registry a replayed renew gets EPP 2306 and the expiry advances once."""
    await seed_one(admin, "replay.fr")
    key = idempotency_key("replay.fr", EXPIRY)
    first = await registry.renew("replay.fr", EXPIRY, 1, key)
    assert (first.previous_expiry, first.new_expiry) == (EXPIRY, add_years(EXPIRY, 1))
    with pytest.raises(ExpiryMismatch) as caught:
        await registry.renew("replay.fr", EXPIRY, 1, key)
    assert caught.value.code == 2306
    assert caught.value.current_expiry == add_years(EXPIRY, 1)
    assert caught.value.cur_exp_date == EXPIRY
    assert (await registry.status("replay.fr")).expiry == add_years(EXPIRY, 1)
    ledger = await registry.ledger(domain="replay.fr")
    assert [(e.client_tx_id, e.previous_expiry) for e in ledger] == [(key, EXPIRY)]


async def test_lenient_replay_renews_twice_and_ledger_shows_both(
    admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """A lenient registry ignores curExpDate: the replay renews again, the ledger has both."""
    await admin.configure("info", strict=False)
    await seed_one(admin, "lenient.info")
    key = idempotency_key("lenient.info", EXPIRY)
    await registry.renew("lenient.info", EXPIRY, 1, key)
    second = await registry.renew("lenient.info", EXPIRY, 1, key)
    assert second.previous_expiry == add_years(EXPIRY, 1)
    assert (await registry.status("lenient.info")).expiry == add_years(EXPIRY, 2)
    ledger = await registry.ledger("info", client_tx_id=key)
    assert [e.new_expiry for e in ledger] == [add_years(EXPIRY, 1), add_years(EXPIRY, 2)]
    assert len({e.server_tx_id for e in ledger}) == 2


async def test_burst_beyond_the_rate_limit_gets_429_and_the_limit_holds(
    sim: SimServer, admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """Calls past the bucket get 429 + Retry-After; admitted <= burst + rate x elapsed."""
    rate, burst, calls = 5.0, 3, 40
    await admin.configure("de", rate_limit=rate, burst=burst)
    await seed_one(admin, "busy.de")

    async def one() -> str:
        try:
            await registry.status("busy.de")
        except RateLimited as exc:
            assert exc.retry_after > 0 and exc.tld == "de"
            return "limited"
        return "ok"

    outcomes = await asyncio.gather(*(one() for _ in range(calls)))
    assert outcomes.count("limited") > 0
    traffic = await admin.traffic("de")
    assert (traffic["admitted"], traffic["rejected"]) == (
        outcomes.count("ok"),
        outcomes.count("limited"),
    )
    seconds = traffic["seconds"]
    window = seconds[-1]["second"] - seconds[0]["second"] + 1
    assert traffic["admitted"] <= burst + rate * window
    assert sum(s["admitted"] for s in seconds) == traffic["admitted"]
    assert traffic["peak_excess"] <= burst + 1e-6

    await admin.configure("de", rate_limit=0.01, burst=1)  # at most one more token for 100 s
    async with httpx.AsyncClient() as http:
        raw = [await http.get(f"{sim.registry_url('de')}/domains/busy.de") for _ in range(2)]
    assert raw[-1].status_code == 429
    assert float(raw[-1].headers["retry-after"]) == raw[-1].json()["retry_after"] > 1


async def test_commit_then_timeout_leaves_the_renewal_and_the_client_sees_ambiguity(
    sim: SimServer, admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """The registry commits, holds the answer; the client times out with AmbiguousTimeout."""
    await admin.configure("eu", commit_timeout_rate=1.0, hold_s=3.0)
    await seed_one(admin, "held.eu")
    key = idempotency_key("held.eu", EXPIRY)
    async with RegistryClient(base_url=sim.url, timeout_s=1.0) as impatient:
        with pytest.raises(AmbiguousTimeout) as caught:
            await impatient.renew("held.eu", EXPIRY, 2, key)
    assert (caught.value.client_tx_id, caught.value.years) == (key, 2)
    assert not caught.value.retryable
    ledger = await registry.ledger("eu", client_tx_id=key)
    assert [(e.domain, e.years, e.new_expiry) for e in ledger] == [
        ("held.eu", 2, add_years(EXPIRY, 2))
    ]
    assert (await registry.status("held.eu")).expiry == add_years(EXPIRY, 2)


async def test_unknown_domain_is_domain_not_found(registry: RegistryClient) -> None:
    """Status, price and renew of a domain the registry lacks raise DomainNotFound (2303)."""
    with pytest.raises(DomainNotFound) as caught:
        await registry.status("nosuch.com")
    assert (caught.value.domain, caught.value.tld, caught.value.code) == ("nosuch.com", "com", 2303)
    with pytest.raises(DomainNotFound):
        await registry.price("nosuch.com", 1)
    with pytest.raises(DomainNotFound):
        await registry.renew("nosuch.com", EXPIRY, 1, "tx-1")


async def test_renew_prohibited_status_is_refused(
    admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """clientRenewProhibited refuses the renew (2304) and nothing reaches the ledger."""
    await seed_one(admin, "locked.com", statuses=["clientRenewProhibited"])
    status = await registry.status("locked.com")
    assert status.renew_prohibited and "clientRenewProhibited" in status.statuses
    with pytest.raises(RenewProhibited) as caught:
        await registry.renew("locked.com", EXPIRY, 1, "tx-locked")
    assert caught.value.code == 2304 and caught.value.statuses == ("clientRenewProhibited",)
    assert await registry.ledger(domain="locked.com") == []


async def test_period_beyond_ten_years_is_policy_refused(
    admin: AsyncSimAdmin, registry: RegistryClient
) -> None:
    """A renew taking the expiry past today + 10 years is refused (2306, not a mismatch)."""
    await seed_one(admin, "long.fr", expiry=add_years(TODAY, 5))
    with pytest.raises(PolicyRefused) as caught:
        await registry.renew("long.fr", add_years(TODAY, 5), 6, "tx-long")
    assert not isinstance(caught.value, ExpiryMismatch)
    assert caught.value.reason == "max_period_exceeded"
    assert (await registry.renew("long.fr", add_years(TODAY, 5), 5, "tx-ok")).years == 5


async def test_price_is_standard_or_premium(admin: AsyncSimAdmin, registry: RegistryClient) -> None:
    """Standard domains pay the registry's yearly price, premium ones their own, times years."""
    await admin.configure("com", price_cents=1000)
    await seed_one(admin, "plain.com")
    await seed_one(admin, "gold.com", premium_cents=25_000)
    plain = await registry.price("plain.com", 3)
    gold = await registry.price("gold.com", 2)
    assert (plain.premium, plain.price_cents, plain.currency) == (False, 3000, "EUR")
    assert (gold.premium, gold.price_cents) == (True, 50_000)
    assert (await registry.status("gold.com")).premium


async def test_seeding_generated_domains(sim: SimServer, admin: AsyncSimAdmin) -> None:
    """`count` generated domains are stored with expiries in range, reproducibly from the seed."""
    lo, hi = TODAY + dt.timedelta(days=10), TODAY + dt.timedelta(days=40)
    options = {"prefix": "gen-", "expiry_from": lo, "expiry_to": hi, "premium_share": 0.5}
    result = await admin.seed_generated("fr", 20_000, seed=7, **options)
    assert result == {
        "tld": "fr",
        "seeded": 20_000,
        "first": "gen-000001.fr",
        "last": "gen-020000.fr",
    }
    assert (await admin.summary("fr"))["domains"] == 20_000
    async with RegistryClient(base_url=sim.url) as client:
        statuses = [await client.status(f"gen-{n:06d}.fr") for n in (1, 777, 20_000)]
        assert all(lo <= s.expiry <= hi for s in statuses)
        await admin.seed_generated("fr", 20_000, seed=7, **options)
        again = [await client.status(f"gen-{n:06d}.fr") for n in (1, 777, 20_000)]
    assert again == statuses
    assert (await admin.summary("fr"))["domains"] == 20_000


BAD_INPUTS = [
    (
        "post",
        "/registries/fr/domains/x.fr/renew",
        {"cur_exp_date": "2030-01-01", "years": 11},
        "years",
    ),
    (
        "post",
        "/registries/fr/domains/x.fr/renew",
        {"cur_exp_date": "2030-02-30", "years": 1},
        "cur_exp_date",
    ),
    ("post", "/registries/fr/domains/x.fr/renew", {"years": 1}, "cur_exp_date"),
    (
        "post",
        "/registries/fr/domains/x.fr/renew",
        {"cur_exp_date": "2030-01-01", "years": "1"},
        "years",
    ),
    (
        "post",
        "/registries/fr/domains/a..fr/renew",
        {"cur_exp_date": "2030-01-01", "years": 1},
        "domain",
    ),
    ("get", "/registries/fr/domains/x.com", None, "domain"),
    ("get", "/registries/fr/domains/x.fr/price?years=0", None, "years"),
    ("get", "/registries/zz/domains/x.zz", None, "tld"),
    ("put", "/registries/fr/config", {"error_rate": 2}, "error_rate"),
    ("put", "/registries/fr/config", {"colour": "blue"}, "colour"),
    ("put", "/registries/fr/config", {"strict": "yes"}, "strict"),
    (
        "post",
        "/registries/fr/seed",
        {"domains": [{"domain": "a.fr", "expiry": "soon"}]},
        "domains.0.expiry",
    ),
    (
        "post",
        "/registries/fr/seed",
        {"domains": [{"domain": "a.de", "expiry": "2030-01-01"}]},
        "domains.0.domain",
    ),
    ("post", "/registries/fr/seed", {"count": 0}, "count"),
    ("post", "/registries/fr/seed", {}, "count"),
    ("post", "/registries/fr/seed", {"count": 5, "prefix": "Bad_"}, "prefix"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_INPUTS)
def test_bad_input_is_a_4xx_naming_the_field(
    sim: SimServer, method: str, path: str, body: Any, field: str
) -> None:
    """Malformed requests get a 4xx JSON error whose `field` names what is wrong."""
    response = httpx.request(method, f"{sim.url}{path}", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == field, response.text
    assert field in response.json()["message"]


async def test_client_maps_bad_input_to_registry_bad_request(registry: RegistryClient) -> None:
    """A 422 from the registry becomes RegistryBadRequest carrying the field."""
    with pytest.raises(RegistryBadRequest) as caught:
        await registry.price("x.fr", 11)
    assert caught.value.field == "years" and caught.value.http_status == 422


async def test_outage_and_unreachable_registry_are_unavailable(
    admin: AsyncSimAdmin, registry: RegistryClient, sim: SimServer
) -> None:
    """error_rate 1.0 answers 503 and a closed port refuses: both RegistryUnavailable, retryable."""
    await seed_one(admin, "down.com")
    await admin.configure("com", error_rate=1.0, seed=1)
    with pytest.raises(RegistryUnavailable) as caught:
        await registry.renew("down.com", EXPIRY, 1, "tx-down")
    assert caught.value.retryable and caught.value.http_status == 503
    assert await registry.ledger(domain="down.com") == []
    nowhere = RegistryClient(base_url=lambda tld: f"http://127.0.0.1:9/registries/{tld}")
    async with nowhere:
        with pytest.raises(RegistryUnavailable):
            await nowhere.renew("down.com", EXPIRY, 1, "tx-down")


def test_config_survives_a_restart(db_dsn: str) -> None:
    """Settings put over HTTP are stored in PostgreSQL and read back by a new simulator."""
    changes = {"strict": False, "rate_limit": 7.5, "burst": 4, "hold_s": 2.0, "seed": 42}
    with SimServer(db_dsn) as first, SimAdmin(first.url) as admin:
        admin.configure("fr", **changes)
    with SimServer(db_dsn) as second, SimAdmin(second.url) as admin:
        config = admin.config("fr")
        assert {k: config[k] for k in changes} == changes
        assert admin.config("de")["strict"] is True


async def test_errors_survive_pickling(admin: AsyncSimAdmin, registry: RegistryClient) -> None:
    """Client errors keep their attributes through pickle (for process pools and workers)."""
    await seed_one(admin, "pickle.de")
    await registry.renew("pickle.de", EXPIRY, 1, "tx-p")
    with pytest.raises(ExpiryMismatch) as caught:
        await registry.renew("pickle.de", EXPIRY, 1, "tx-p")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is ExpiryMismatch and str(copy) == str(caught.value)
    assert (copy.domain, copy.current_expiry, copy.code) == (
        "pickle.de",
        add_years(EXPIRY, 1),
        2306,
    )


async def test_reset_forgets_one_registry(admin: AsyncSimAdmin, registry: RegistryClient) -> None:
    """Resetting .fr drops its domains and configuration and leaves .de alone."""
    await seed_one(admin, "gone.fr")
    await seed_one(admin, "kept.de")
    await admin.configure("fr", strict=False)
    await admin.reset("fr")
    with pytest.raises(DomainNotFound):
        await registry.status("gone.fr")
    assert (await registry.status("kept.de")).expiry == EXPIRY
    assert (await admin.config("fr"))["strict"] is True


@pytest.fixture
def keep_log_config() -> Iterator[None]:
    """The CLI reconfigures structlog onto the captured stderr: put the old setup back after."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_cli_seed_and_config(
    sim: SimServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keep_log_config: None,
) -> None:
    """`dualrun registry-sim seed/config` drive the running simulator; bad options exit 2."""
    monkeypatch.setenv("DUALRUN_REGISTRY_URL", sim.url)
    assert run(["registry-sim", "seed", "--tld", "info", "--count", "25", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seeded"] == 25
    args = ["registry-sim", "config", "--tld", "info", "--lenient", "--rate", "9", "--json"]
    assert run(args) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["strict"], config["rate_limit"], config["burst"]) == (False, 9.0, 9)
    assert run(["registry-sim", "config", "--tld", "info", "--error-rate", "2"]) == 2
    assert run(["registry-sim", "seed", "--tld", "xx", "--count", "1"]) == 2
    assert run(["registry-sim", "seed", "--tld", "fr", "--count", "1", "--prefix", "A_"]) == 2
    monkeypatch.setenv("DUALRUN_REGISTRY_URL", "http://127.0.0.1:9")
    assert run(["registry-sim", "config", "--tld", "info"]) == 1


async def test_long_name_renews_under_an_epp_sized_client_transaction_id(
    admin: AsyncSimAdmin, registry: RegistryClient, sim: SimServer
) -> None:
    """A key longer than EPP's 64-character clTRID is sent as a stable digest (found again by
    the key); the simulator, like a real registry, refuses an over-long clTRID."""
    name = f"{'a' * 63}.info"  # the longest label: an 85-character key
    await seed_one(admin, name)
    key = idempotency_key(name, EXPIRY)
    assert len(key) > 64
    sent = epp_client_tx_id(key)
    assert len(sent) == 64 and sent == epp_client_tx_id(key) and sent != key
    assert epp_client_tx_id("renew:a.fr:2027-01-01") == "renew:a.fr:2027-01-01"
    await registry.renew(name, EXPIRY, 1, key)
    ledger = await registry.ledger("info", client_tx_id=key)
    assert [(e.domain, e.client_tx_id) for e in ledger] == [(name, sent)]
    async with httpx.AsyncClient(base_url=sim.url) as raw:
        refused = await raw.post(
            f"/registries/info/domains/{name}/renew",
            json={"cur_exp_date": EXPIRY.isoformat(), "years": 1, "client_tx_id": "x" * 65},
        )
    assert refused.status_code == 422 and "client_tx_id" in refused.text
    assert len(await registry.ledger("info", domain=name)) == 1  # nothing renewed


async def test_a_renewal_is_found_by_its_client_transaction_id(
    admin: AsyncSimAdmin, registry: RegistryClient, sim: SimServer
) -> None:
    """The registry's record of a renewal made with a clTRID: found for its period only, not
    for another client's; the lookup is a rate-limited command like any other."""
    await seed_one(admin, "mine.eu")
    key = idempotency_key("mine.eu", EXPIRY)
    assert await registry.find_renewal("mine.eu", key, EXPIRY) is None
    done = await registry.renew("mine.eu", EXPIRY, 1, key)
    await registry.renew("mine.eu", add_years(EXPIRY, 1), 1, "someone-else")
    found = await registry.find_renewal("mine.eu", key, EXPIRY)
    assert found is not None and found.server_tx_id == done.server_tx_id
    assert found.new_expiry == add_years(EXPIRY, 1)
    assert await registry.find_renewal("mine.eu", key, add_years(EXPIRY, 1)) is None
    long_name = f"{'b' * 63}.eu"  # a key over 64 characters is looked up by its digest
    await seed_one(admin, long_name)
    long_key = idempotency_key(long_name, EXPIRY)
    await registry.renew(long_name, EXPIRY, 1, long_key)
    assert await registry.find_renewal(long_name, long_key, EXPIRY) is not None
    with pytest.raises(DomainNotFound):
        await registry.find_renewal("nobody.eu", key, EXPIRY)
    async with httpx.AsyncClient(base_url=sim.url) as raw:
        bad = await raw.get("/registries/eu/domains/mine.eu/renewals", params={"client_tx_id": "x"})
    assert bad.status_code == 422 and "client_tx_id" in bad.text
    await admin.configure("eu", rate_limit=0.01, burst=1)
    await registry.status("mine.eu")  # takes the only token
    with pytest.raises(RateLimited):
        await registry.find_renewal("mine.eu", key, EXPIRY)
