"""Flag model, sources, chain and router, evaluated by the real UnleashClient SDK offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from prometheus_client import REGISTRY

from dualrun.flags.chain import FlagChain
from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import (
    FlagSourceKind,
    RuleChange,
    TldRule,
    bucket_of,
    check_change,
    parse_state,
    strategy_body,
)
from dualrun.flags.port import FlagView
from dualrun.flags.sources import BootstrapSource, MemoryCache
from dualrun.routing.router import Router
from renewals.errors import InvalidInput
from renewals.model import Engine, Mode

FLAG = "dualrun.renewals"
TLDS = frozenset({"com", "de", "eu", "fr", "info"})
NAMES = [f"name-{i}.fr" for i in range(4000)]


def _bootstrap(tmp_path: Path, *rules: TldRule, enabled: bool = True) -> Path:
    path = tmp_path / "bootstrap.json"
    path.write_text(SEED.read_text())
    local = LocalFlags(path, FLAG)
    for rule in rules:
        local.set_rule(RuleChange(rule.tld, rule.mode, rule.rollout))
    local.set_enabled(enabled)
    return path


def _router(path: Path) -> Router:
    return Router(FlagChain(FLAG, None, BootstrapSource(path, FLAG, recheck_s=0)))


def test_bucket_is_the_sdk_stickiness(tmp_path: Path) -> None:
    """Our bucket agrees with the SDK's flexibleRollout on every one of 4,000 names."""
    router = _router(_bootstrap(tmp_path, TldRule("fr", Mode.TEMPORAL, 37, FLAG)))
    for name in NAMES:
        d = router.route(name)
        assert (d.engine == Engine.TEMPORAL) == (d.bucket < 37), name
        assert d.bucket == bucket_of(name, FLAG)


def test_raising_the_rollout_keeps_moved_domains(tmp_path: Path) -> None:
    """25% → 50%: every domain on Temporal stays there; shares are near the percentage."""
    path = _bootstrap(tmp_path, TldRule("fr", Mode.TEMPORAL, 25, FLAG))
    moved = {d.domain for d in _router(path).route_all(NAMES) if d.engine == Engine.TEMPORAL}
    LocalFlags(path, FLAG).set_rule(RuleChange("fr", Mode.TEMPORAL, 50))
    later = {d.domain for d in _router(path).route_all(NAMES) if d.engine == Engine.TEMPORAL}
    assert moved <= later
    assert abs(len(moved) / len(NAMES) - 0.25) < 0.03
    assert abs(len(later) / len(NAMES) - 0.50) < 0.03


def test_modes_kill_switch_and_missing_strategy(tmp_path: Path) -> None:
    """shadow → legacy engine; no strategy → legacy; flag off → legacy, with the reason."""
    path = _bootstrap(
        tmp_path, TldRule("info", Mode.SHADOW, 100, FLAG), TldRule("fr", Mode.TEMPORAL, 100, FLAG)
    )
    router = _router(path)
    shadow = router.route("a.info")
    assert (shadow.mode, shadow.engine) == (Mode.SHADOW, Engine.LEGACY)
    assert router.route("a.fr").engine == Engine.TEMPORAL
    assert router.route("a.com").mode == Mode.LEGACY
    assert router.route("a.fr").source == FlagSourceKind.BOOTSTRAP
    LocalFlags(path, FLAG).set_enabled(False)
    off = _router(path).route("a.fr")
    assert off.engine == Engine.LEGACY and "kill switch" in off.reason
    assert off.flag_state["enabled"] is False and off.flag_state["rule"]["mode"] == "temporal"


def test_strategy_body_round_trips() -> None:
    """What `flags set` writes parses back to the same rule."""
    rule = TldRule("eu", Mode.SHADOW, 40, FLAG)
    doc = {"features": [{"name": FLAG, "enabled": True, "strategies": [strategy_body(rule, FLAG)]}]}
    assert parse_state(doc, FLAG).rule("eu") == rule


@pytest.mark.parametrize(
    ("tld", "mode", "rollout", "field"),
    [("xx", "temporal", 5, "tld"), ("fr", "fast", 5, "mode"), ("fr", "temporal", 101, "rollout")],
)
def test_bad_flag_changes_name_the_field(tld: str, mode: str, rollout: int, field: str) -> None:
    """Unknown TLD, unknown mode, rollout outside 0-100: InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as caught:
        check_change(tld, mode, rollout, TLDS)
    assert caught.value.field == field


def test_rollout_kept_when_not_given() -> None:
    """Without --rollout a routed TLD keeps its share; legacy covers everything."""
    current = TldRule("fr", Mode.TEMPORAL, 30, FLAG)
    assert RuleChange("fr", Mode.SHADOW, None).apply(current, FLAG).rollout == 30
    assert RuleChange("fr", Mode.LEGACY, None).apply(current, FLAG).rollout == 100
    assert RuleChange("fr", Mode.TEMPORAL, None).apply(None, FLAG).rollout == 100


def test_local_set_is_idempotent(tmp_path: Path) -> None:
    """The same `flags set` twice writes the file once."""
    path = _bootstrap(tmp_path)
    local = LocalFlags(path, FLAG)
    assert local.set_rule(RuleChange("de", Mode.TEMPORAL, 10))[1] is True
    before = path.read_text()
    assert local.set_rule(RuleChange("de", Mode.TEMPORAL, 10))[1] is False
    assert path.read_text() == before
    strategies = json.loads(before)["features"][0]["strategies"]
    assert sum(1 for s in strategies if "de" in s["constraints"][0]["values"]) == 1


def test_memory_cache_never_offers_an_etag() -> None:
    """Every poll is a full fetch, so each answer from the server is seen."""
    cache = MemoryCache()
    cache.set("etag", "W/1")
    assert cache.get("etag") == "" and cache.features_written_at is None
    cache.set("/client/features", "{}")
    assert cache.features_written_at is not None


class _Fixed:
    """A flag source port stand-in for the chain order (no service is faked here)."""

    def __init__(self, view: FlagView | None) -> None:
        self.view = view

    def start(self) -> None:
        pass

    def read(self) -> FlagView | None:
        return self.view

    def close(self) -> None:
        pass


def test_chain_falls_back_in_order_and_reports_it(tmp_path: Path) -> None:
    """server → (server says nothing) bootstrap → nothing: default, logged and in the gauge."""
    boot = BootstrapSource(_bootstrap(tmp_path), FLAG, recheck_s=0)
    server = _Fixed(None)
    chain = FlagChain(FLAG, server, boot)
    with structlog.testing.capture_logs() as logs:
        assert chain.read().source == FlagSourceKind.BOOTSTRAP
        boot.path.unlink()
        assert chain.read().source == FlagSourceKind.DEFAULT
    events = [(e["event"], e.get("source")) for e in logs]
    assert ("router.flags.fallback", "bootstrap") in events
    assert ("router.flags.fallback", "default") in events
    gauge = REGISTRY.get_sample_value("dualrun_flag_source", {"source": "default"})
    assert gauge == 1.0
    decision = Router(chain).route("x.fr")
    assert decision.engine == Engine.LEGACY and decision.source == FlagSourceKind.DEFAULT
