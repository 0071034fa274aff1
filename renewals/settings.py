"""Settings, read once from the environment into a frozen object and passed down.

With nothing configured every part points at the embedded local stack under `.dualrun/`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from renewals.domains import DEFAULT_TLDS
from renewals.env import EnvReader, Secret
from renewals.errors import ConfigError
from renewals.queues import DEFAULT_TASK_QUEUE

DEFAULT_RATE_LIMITS: Mapping[str, float] = {
    "com": 50.0,
    "de": 30.0,
    "eu": 20.0,
    "fr": 40.0,
    "info": 20.0,
}
DEFAULT_CONCURRENCY = 20


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    database_url: Secret | None = None
    pg_port: int = 54329
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_api_key: Secret | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui_base: str | None = None  # DUALRUN_TEMPORAL_UI_URL; None: the embedded Web UI
    task_queue: str = DEFAULT_TASK_QUEUE
    unleash_url: str | None = None
    unleash_client_token: Secret | None = None
    unleash_admin_token: Secret | None = None
    unleash_app_name: str = "dualrun"
    unleash_flag: str = "dualrun.renewals"
    unleash_environment: str = "development"
    unleash_refresh_s: int = 1
    unleash_port: int = 4242  # the local stack's Unleash server
    # True when unleash_url and its tokens are the local stack's Unleash (found running in the
    # state dir by the composition root), not configured: the stack still manages it.
    unleash_stack: bool = False
    flags_bootstrap: Path | None = None  # None: state_dir/flags/bootstrap.json, seeded from ops/
    registry_url: str | None = None
    registry_urls: Mapping[str, str] = field(default_factory=dict)
    registry_sim_port: int = 8710
    registry_rate_limits: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    registry_concurrency: Mapping[str, int] = field(default_factory=dict)
    registry_timeout_s: float = 10.0
    activity_timeout_s: float = 30.0
    registry_max_attempts: int = 8  # per registry call, 429s excepted; 0: retry forever
    webhook_url: Secret | None = None
    api_token: Secret | None = None  # the HTTP API's write token (it reads too)
    api_read_token: Secret | None = None  # the HTTP API's read-only token
    metrics_require_token: bool = False  # /metrics answers only with a token when set
    tlds: frozenset[str] = DEFAULT_TLDS
    log_level: str = "info"
    log_format: str = "auto"
    report_dir: Path | None = None  # None: state_dir/reports
    # readiness thresholds of the report (None: the defaults of reconciler.report.Thresholds)
    report_min_shadow_match: float | None = None  # percent
    report_min_success_rate: float | None = None  # percent
    report_min_volume: int | None = None
    report_runs: int | None = None
    report_min_aa_pairs: int | None = None  # A/A pairs needed before their noise is credited
    shadow_aa_share: float = 0.02  # of shadow renewals planned twice (A/A: the comparator's noise)
    # Workflow runs each worker keeps in memory between their tasks (about 0.1 MB each). A run
    # pushed out is replayed from its whole history at its next task. The SDK's 1,000 is less
    # than a month start keeps open: 10,000 renewals open about 4,500 runs across 2 workers.
    workflow_cache: int = 5000
    # The paced legacy robots' limits (`legacy-engine --pace`), where a provider is shared with
    # Temporal: the two add up to what the provider allows (runbooks/month-start.md). A TLD not
    # named here is paced at its DUALRUN_REGISTRY_RATE_LIMITS.
    legacy_rate_limits: Mapping[str, float] = field(default_factory=dict)

    @property
    def reports_dir(self) -> Path:
        return self.report_dir or self.state_dir / "reports"

    # -- where each part lives -------------------------------------------------------------
    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_unleash(self) -> bool:
        """The local stack runs the Unleash server (no DUALRUN_UNLEASH_URL configured)."""
        return self.unleash_url is None or self.unleash_stack

    @property
    def embedded_registry(self) -> bool:
        return self.registry_url is None and not self.registry_urls

    @property
    def dsn(self) -> str:
        """The PostgreSQL connection string (contains the password: never log it)."""
        if self.database_url is not None:
            return self.database_url.reveal()
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def embedded_temporal_ui_url(self) -> str:
        """The Web UI of the stack's Temporal dev server."""
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def temporal_ui_url(self) -> str | None:
        """The Temporal Web UI links point at: DUALRUN_TEMPORAL_UI_URL, else the embedded UI
        (None for a configured cluster without a UI URL)."""
        if self.temporal_ui_base is not None:
            return self.temporal_ui_base
        return None if self.temporal_address else self.embedded_temporal_ui_url

    def registry_base_url(self, tld: str) -> str:
        """Base URL of the registry for `tld` (the simulator serves all under /registries/)."""
        if tld in self.registry_urls:
            return self.registry_urls[tld].rstrip("/")
        base = self.registry_url or f"http://127.0.0.1:{self.registry_sim_port}"
        return f"{base.rstrip('/')}/registries/{tld}"

    def rate_limit(self, tld: str) -> float:
        return self.registry_rate_limits.get(tld, 10.0)

    def legacy_rate_limit(self, tld: str) -> float:
        return self.legacy_rate_limits.get(tld, self.rate_limit(tld))

    def concurrency(self, tld: str) -> int:
        return self.registry_concurrency.get(tld, DEFAULT_CONCURRENCY)

    def secrets(self) -> list[str]:
        """Every secret value, for the log redactor."""
        values = [
            self.database_url,
            self.temporal_api_key,
            self.unleash_client_token,
            self.unleash_admin_token,
            self.webhook_url,
            self.api_token,
            self.api_read_token,
        ]
        return [v.reveal() for v in values if v is not None and v.reveal()]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        return _read(EnvReader(e))


def _defaults() -> dict[str, Any]:
    """Each setting's default, from the dataclass: written once."""
    return {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def _read(r: EnvReader) -> Settings:
    """Each setting from its variable (or its Temporal-standard alias); unset: the default."""
    d = _defaults()
    state_dir = Path(r.get("DUALRUN_STATE_DIR") or ".dualrun").expanduser().resolve()
    tlds_raw = r.get("DUALRUN_TLDS")
    tlds = (
        frozenset(t.strip().lower().lstrip(".") for t in tlds_raw.split(",") if t.strip())
        if tlds_raw
        else DEFAULT_TLDS
    )
    if not tlds:
        raise ConfigError("DUALRUN_TLDS", "names no TLD")
    rate_limits = dict(DEFAULT_RATE_LIMITS)
    rate_limits.update(r.numbers("DUALRUN_REGISTRY_RATE_LIMITS"))
    concurrency = {k: max(1, int(v)) for k, v in r.numbers("DUALRUN_REGISTRY_CONCURRENCY").items()}
    log_format = (r.get("DUALRUN_LOG_FORMAT") or d["log_format"]).lower()
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(
            "DUALRUN_LOG_FORMAT", f"must be auto, json or console, got {log_format!r}"
        )
    cert = r.get("TEMPORAL_TLS_CLIENT_CERT_PATH")
    key = r.get("TEMPORAL_TLS_CLIENT_KEY_PATH")
    bootstrap = r.get("DUALRUN_FLAGS_BOOTSTRAP")
    report_dir = r.get("DUALRUN_REPORT_DIR")
    api_token = r.secret("DUALRUN_API_TOKEN")
    api_read_token = r.secret("DUALRUN_API_READ_TOKEN")
    if api_token is not None and api_token == api_read_token:
        raise ConfigError(
            "DUALRUN_API_READ_TOKEN", "must differ from DUALRUN_API_TOKEN (the write token)"
        )
    return Settings(
        state_dir=state_dir,
        database_url=r.secret("DUALRUN_DATABASE_URL"),
        pg_port=r.integer("DUALRUN_PG_PORT", d["pg_port"]),
        temporal_address=r.get("DUALRUN_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"),
        temporal_namespace=r.get("DUALRUN_TEMPORAL_NAMESPACE", "TEMPORAL_NAMESPACE")
        or d["temporal_namespace"],
        temporal_tls=r.boolean("DUALRUN_TEMPORAL_TLS", "TEMPORAL_TLS") or bool(cert),
        temporal_api_key=r.secret("DUALRUN_TEMPORAL_API_KEY", "TEMPORAL_API_KEY"),
        temporal_tls_cert=Path(cert) if cert else None,
        temporal_tls_key=Path(key) if key else None,
        temporal_port=r.integer("DUALRUN_TEMPORAL_PORT", d["temporal_port"]),
        temporal_ui_port=r.integer("DUALRUN_TEMPORAL_UI_PORT", d["temporal_ui_port"]),
        temporal_ui_base=r.http_url("DUALRUN_TEMPORAL_UI_URL"),
        task_queue=r.get("DUALRUN_TASK_QUEUE") or d["task_queue"],
        unleash_url=r.get("DUALRUN_UNLEASH_URL"),
        unleash_client_token=r.secret("DUALRUN_UNLEASH_CLIENT_TOKEN"),
        unleash_admin_token=r.secret("DUALRUN_UNLEASH_ADMIN_TOKEN"),
        unleash_app_name=r.get("DUALRUN_UNLEASH_APP_NAME") or d["unleash_app_name"],
        unleash_flag=r.get("DUALRUN_UNLEASH_FLAG") or d["unleash_flag"],
        unleash_environment=r.get("DUALRUN_UNLEASH_ENVIRONMENT") or d["unleash_environment"],
        unleash_refresh_s=r.integer("DUALRUN_UNLEASH_REFRESH", d["unleash_refresh_s"], 1, 3600),
        unleash_port=r.integer("DUALRUN_UNLEASH_PORT", d["unleash_port"]),
        flags_bootstrap=Path(bootstrap).expanduser().resolve() if bootstrap else None,
        registry_url=r.get("DUALRUN_REGISTRY_URL"),
        registry_urls=r.mapping("DUALRUN_REGISTRY_URLS"),
        registry_sim_port=r.integer("DUALRUN_REGISTRY_SIM_PORT", d["registry_sim_port"]),
        registry_rate_limits=rate_limits,
        registry_concurrency=concurrency,
        registry_timeout_s=r.number("DUALRUN_REGISTRY_TIMEOUT", d["registry_timeout_s"]),
        activity_timeout_s=r.number("DUALRUN_ACTIVITY_TIMEOUT", d["activity_timeout_s"]),
        registry_max_attempts=r.integer(
            "DUALRUN_REGISTRY_MAX_ATTEMPTS", d["registry_max_attempts"], 0, 1000
        ),
        webhook_url=r.secret("DUALRUN_WEBHOOK_URL"),
        api_token=api_token,
        api_read_token=api_read_token,
        metrics_require_token=r.boolean("DUALRUN_METRICS_REQUIRE_TOKEN"),
        tlds=tlds,
        log_level=(r.get("DUALRUN_LOG_LEVEL") or d["log_level"]).lower(),
        log_format=log_format,
        report_dir=Path(report_dir).expanduser().resolve() if report_dir else None,
        report_min_shadow_match=r.percent("DUALRUN_REPORT_MIN_SHADOW_MATCH"),
        report_min_success_rate=r.percent("DUALRUN_REPORT_MIN_SUCCESS_RATE"),
        report_min_volume=r.maybe_integer("DUALRUN_REPORT_MIN_VOLUME", 0, 10**9),
        report_runs=r.maybe_integer("DUALRUN_REPORT_RUNS", 1, 366),
        report_min_aa_pairs=r.maybe_integer("DUALRUN_REPORT_MIN_AA_PAIRS", 1, 10**9),
        shadow_aa_share=r.fraction("DUALRUN_SHADOW_AA_SHARE", d["shadow_aa_share"]),
        legacy_rate_limits=r.numbers("DUALRUN_LEGACY_RATE_LIMITS"),
        workflow_cache=r.integer("DUALRUN_WORKFLOW_CACHE", d["workflow_cache"], 0, 1_000_000),
    )
