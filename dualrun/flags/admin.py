"""The Unleash admin API as `dualrun flags set|on|off|export` uses it (idempotent writes).

`set` creates what is missing — the `tld` and `domain` context fields (`domain` with
stickiness), the flag, the TLD's strategy — and updates what differs; a second identical call
changes nothing. The admin token goes only into the Authorization header, never into a message.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
import structlog

from dualrun.flags.model import (
    DOMAIN_FIELD,
    TLD_FIELD,
    RuleChange,
    TldRule,
    covers_tld,
    parse_state,
    strategy_body,
)
from renewals.env import Secret
from renewals.errors import DualrunError
from renewals.logs import redact_text

log = structlog.get_logger(__name__)


class UnleashAdminError(DualrunError):
    """The Unleash server refused a call or could not be reached."""

    def __init__(self, what: str, problem: str, status: int | None = None) -> None:
        super().__init__(f"unleash: {what}: {problem}")
        self.status = status


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def key(s: dict[str, Any]) -> tuple[Any, ...]:
        constraints = tuple(
            (c.get("contextName"), c.get("operator"), tuple(c.get("values") or []))
            for c in s.get("constraints") or []
        )
        params = s.get("parameters") or {}
        variants = tuple(
            (v.get("name"), (v.get("payload") or {}).get("value"), v.get("stickiness"))
            for v in s.get("variants") or []
        )
        return (
            s.get("name"),
            constraints,
            str(params.get("rollout")),
            params.get("stickiness"),
            params.get("groupId"),
            variants,
            bool(s.get("disabled", False)),
        )

    return key(existing) == key(wanted)


class UnleashAdmin:
    def __init__(
        self,
        base_url: str,
        token: Secret,
        flag: str,
        *,
        project: str = "default",
        environment: str = "development",
        timeout_s: float = 10.0,
    ) -> None:
        self.flag = flag
        self.project = project
        self.environment = environment
        self._secrets = [token.reveal()]
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": token.reveal(), "Content-Type": "application/json"},
            timeout=timeout_s,
        )

    def __enter__(self) -> UnleashAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def _feature_path(self) -> str:
        return f"/api/admin/projects/{self.project}/features/{self.flag}"

    @property
    def _env_path(self) -> str:
        return f"{self._feature_path}/environments/{self.environment}"

    def _call(
        self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise UnleashAdminError(what, redact_text(str(exc), self._secrets)) from None
        if response.status_code not in expect:
            try:
                message = str(response.json().get("message") or response.text)
            except ValueError:
                message = response.text
            problem = f"HTTP {response.status_code}: {redact_text(message[:300], self._secrets)}"
            raise UnleashAdminError(what, problem, response.status_code)
        return response

    # -- context fields and the flag ---------------------------------------------------------
    def ensure_context_fields(self, tlds: frozenset[str]) -> list[str]:
        """`tld` (legal values: the TLDs) and `domain` (stickiness on); returns those changed."""
        wanted: dict[str, dict[str, Any]] = {
            TLD_FIELD: {
                "name": TLD_FIELD,
                "description": "TLD of the renewed domain (dualrun routing)",
                "stickiness": False,
                "legalValues": [{"value": t} for t in sorted(tlds)],
            },
            DOMAIN_FIELD: {
                "name": DOMAIN_FIELD,
                "description": "Domain name (A-label): the rollout sticks on it",
                "stickiness": True,
            },
        }
        changed = []
        for name, body in wanted.items():
            found = self._call("GET", f"/api/admin/context/{name}", expect=(200, 404))
            if found.status_code == 404:
                self._call("POST", "/api/admin/context", body, expect=(200, 201, 409))
                changed.append(name)
                continue
            current = found.json()
            legal = sorted(v.get("value") for v in current.get("legalValues") or [])
            want_legal = sorted(v["value"] for v in body.get("legalValues", []))
            if bool(current.get("stickiness")) != body["stickiness"] or legal != want_legal:
                self._call("PUT", f"/api/admin/context/{name}", body, expect=(200, 204))
                changed.append(name)
        return changed

    def ensure_flag(self) -> bool:
        """Create the flag when missing (not yet on: see `set_rule`); True when created."""
        found = self._call("GET", self._feature_path, expect=(200, 404))
        if found.status_code == 200:
            return False
        body = {
            "name": self.flag,
            "type": "release",
            "description": "dualrun: per-TLD routing of renewals (mode = strategy variant)",
        }
        created = self._call(
            "POST", f"/api/admin/projects/{self.project}/features", body, expect=(200, 201, 409)
        )
        return created.status_code != 409

    def strategies(self) -> list[dict[str, Any]]:
        response = self._call("GET", f"{self._env_path}/strategies", expect=(200, 404))
        return [] if response.status_code == 404 else list(response.json())

    def set_rule(self, change: RuleChange, tlds: frozenset[str]) -> tuple[TldRule, bool]:
        """Create or update the TLD's strategy; (rule written, whether anything changed).

        Strategies naming no TLD (the default one Unleash adds when a flag is switched on
        without any) are removed: they would route every TLD at once.
        """
        changed = bool(self.ensure_context_fields(tlds))
        created = self.ensure_flag()
        strategies = self.strategies()
        feature = {"name": self.flag, "enabled": True, "strategies": strategies}
        existing = parse_state({"features": [feature]}, self.flag).rule(change.tld)
        rule = change.apply(existing, self.flag)
        body = strategy_body(rule, self.flag)
        mine = [s for s in strategies if covers_tld(s, change.tld)]
        if not mine:
            self._call("POST", f"{self._env_path}/strategies", body)
            changed = True
        elif not _same(mine[0], body):
            self._call("PUT", f"{self._env_path}/strategies/{mine[0]['id']}", body)
            changed = True
        for foreign in (s for s in strategies if not any(covers_tld(s, t) for t in tlds)):
            self._call("DELETE", f"{self._env_path}/strategies/{foreign['id']}", expect=(200, 204))
            log.info("flags.strategy_removed", flag=self.flag, strategy=foreign.get("name"))
            changed = True
        if created:
            self._call("POST", f"{self._env_path}/on", expect=(200, 204))
            changed = True
        log.info("flags.set", flag=self.flag, changed=changed, **rule.as_dict())
        return rule, changed

    def flag_enabled(self) -> bool | None:
        found = self._call("GET", self._feature_path, expect=(200, 404))
        if found.status_code == 404:
            return None
        for env in found.json().get("environments") or []:
            if env.get("name") == self.environment:
                return bool(env.get("enabled"))
        return None

    def set_enabled(self, enabled: bool) -> bool:
        """The kill switch: the flag off sends every new renewal to legacy. True if changed."""
        self.ensure_flag()
        if self.flag_enabled() == enabled:
            return False
        self._call("POST", f"{self._env_path}/{'on' if enabled else 'off'}", expect=(200, 204))
        log.info("flags.switched", flag=self.flag, enabled=enabled)
        return True

    def export(self, client_token: Secret | None) -> dict[str, Any]:
        """What SDKs get (`/api/client/features`): a bootstrap file for the router."""
        headers = {"Authorization": client_token.reveal()} if client_token else None
        if client_token:
            self._secrets.append(client_token.reveal())
        try:
            response = self._http.get("/api/client/features", headers=headers)
        except httpx.HTTPError as exc:
            what = "GET /api/client/features"
            raise UnleashAdminError(what, redact_text(str(exc), self._secrets)) from None
        if response.status_code != 200:
            what = "GET /api/client/features"
            raise UnleashAdminError(what, f"HTTP {response.status_code}", response.status_code)
        document: dict[str, Any] = response.json()
        return document
