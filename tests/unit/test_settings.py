"""Settings from the environment, and secrets kept out of logs."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from pathlib import Path

import pytest
import structlog
import uvicorn.config

from renewals import logs
from renewals.env import Secret
from renewals.errors import ConfigError
from renewals.settings import Settings


def test_nothing_configured_means_the_embedded_stack(tmp_path: Path) -> None:
    """With no variables every part is embedded under .dualrun/ on local ports."""
    s = Settings.from_env({"DUALRUN_STATE_DIR": str(tmp_path)})
    assert s.embedded_database and s.embedded_temporal and s.embedded_registry
    assert s.dsn == "postgresql://postgres@127.0.0.1:54329/postgres"
    assert s.temporal_target == "127.0.0.1:7233"
    assert s.registry_base_url("fr") == "http://127.0.0.1:8710/registries/fr"
    assert s.state_dir == tmp_path.resolve()
    assert Settings.from_env({}).state_dir.name == ".dualrun"


def test_real_servers_are_used_as_configured() -> None:
    """A configured DSN, Temporal address and registry URLs switch those parts to external."""
    s = Settings.from_env(
        {
            "DUALRUN_DATABASE_URL": "postgresql://app:s3cret@db.internal:5432/registrar",
            "TEMPORAL_ADDRESS": "temporal.internal:7233",
            "TEMPORAL_NAMESPACE": "renewals",
            "TEMPORAL_API_KEY": "tk-abcdef",
            "DUALRUN_REGISTRY_URLS": "fr=https://epp.fr.example/api/, info=https://info.example",
            "DUALRUN_REGISTRY_RATE_LIMITS": "fr=5,.info=2.5",
        }
    )
    assert not s.embedded_database and not s.embedded_temporal and not s.embedded_registry
    assert s.dsn.endswith("@db.internal:5432/registrar")
    assert (s.temporal_target, s.temporal_namespace) == ("temporal.internal:7233", "renewals")
    assert s.registry_base_url("fr") == "https://epp.fr.example/api"
    assert s.rate_limit("fr") == 5.0 and s.rate_limit("info") == 2.5
    assert "s3cret" not in repr(s) and "tk-abcdef" not in repr(s)
    assert set(s.secrets()) >= {"postgresql://app:s3cret@db.internal:5432/registrar", "tk-abcdef"}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DUALRUN_PG_PORT": "abc"}, "DUALRUN_PG_PORT"),
        ({"DUALRUN_PG_PORT": "70000"}, "DUALRUN_PG_PORT"),
        ({"DUALRUN_REGISTRY_RATE_LIMITS": "fr"}, "DUALRUN_REGISTRY_RATE_LIMITS"),
        ({"DUALRUN_REGISTRY_RATE_LIMITS": "fr=-1"}, "DUALRUN_REGISTRY_RATE_LIMITS"),
        ({"DUALRUN_REGISTRY_TIMEOUT": "soon"}, "DUALRUN_REGISTRY_TIMEOUT"),
        ({"DUALRUN_TEMPORAL_TLS": "maybe"}, "DUALRUN_TEMPORAL_TLS"),
        ({"DUALRUN_LOG_FORMAT": "xml"}, "DUALRUN_LOG_FORMAT"),
        ({"DUALRUN_TLDS": ","}, "DUALRUN_TLDS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    """A bad variable is refused with its name and the problem."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable)


def test_redaction_masks_dsn_passwords_tokens_and_known_secrets() -> None:
    """DSN passwords, token-like keys and configured secret values never reach a log line."""
    out = io.StringIO()
    logs.configure("info", "json", secrets=["tk-abcdef"])
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    log = structlog.get_logger("t")
    log.info(
        "db.connect.failed",
        error="connection to postgresql://app:s3cret@db:5432/x failed",
        api_token="anything",
        detail={"authorization": "Bearer xyz", "note": "used tk-abcdef and password=hunter2"},
        items=["postgres://u:pw@h/db"],
    )
    line = out.getvalue()
    record = json.loads(line)
    for secret in ("s3cret", "tk-abcdef", "hunter2", "Bearer xyz", ":pw@", "anything"):
        assert secret not in line
    assert record["error"] == "connection to postgresql://app:***@db:5432/x failed"
    assert record["api_token"] == "***"
    assert record["event"] == "db.connect.failed"


def test_stdlib_log_lines_and_tracebacks_are_redacted_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A traceback logged by a library (uvicorn's, through stdlib logging) masks secrets, even
    after uvicorn installed its own handlers (its default log config)."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    logs.configure("info", "json", secrets=["tk-abcdef"])
    try:
        raise RuntimeError("connect to postgresql://app:s3cret@db/x with tk-abcdef failed")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert "Exception in ASGI application" in err and "RuntimeError" in err
    assert "s3cret" not in err and "tk-abcdef" not in err


def test_api_tokens_and_the_metrics_switch() -> None:
    """Both API tokens are secrets; /metrics needs none unless DUALRUN_METRICS_REQUIRE_TOKEN."""
    s = Settings.from_env({"DUALRUN_API_TOKEN": "w-1", "DUALRUN_API_READ_TOKEN": "r-1"})
    assert (s.api_token, s.api_read_token) == (Secret("w-1"), Secret("r-1"))
    assert {"w-1", "r-1"} <= set(s.secrets()) and "r-1" not in repr(s)
    assert s.metrics_require_token is False
    on = Settings.from_env({"DUALRUN_METRICS_REQUIRE_TOKEN": "true"})
    assert on.metrics_require_token is True and on.api_read_token is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DUALRUN_METRICS_REQUIRE_TOKEN": "sometimes"}, "DUALRUN_METRICS_REQUIRE_TOKEN"),
        ({"DUALRUN_API_TOKEN": "same", "DUALRUN_API_READ_TOKEN": "same"}, "DUALRUN_API_READ_TOKEN"),
    ],
)
def test_bad_api_auth_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    """A bad switch, or a read token equal to the write token, names its variable (no value)."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == variable and "same" not in str(err.value)


def test_temporal_ui_url() -> None:
    """Links go to DUALRUN_TEMPORAL_UI_URL, else the embedded UI; none for a bare cluster."""
    assert Settings.from_env({"DUALRUN_TEMPORAL_UI_PORT": "18233"}).temporal_ui_url == (
        "http://127.0.0.1:18233"
    )
    assert Settings.from_env({"TEMPORAL_ADDRESS": "t.internal:7233"}).temporal_ui_url is None
    configured = Settings.from_env(
        {"TEMPORAL_ADDRESS": "t.internal:7233", "DUALRUN_TEMPORAL_UI_URL": "https://t.example/ui/"}
    )
    assert configured.temporal_ui_url == "https://t.example/ui"
    assert configured.embedded_temporal_ui_url == "http://127.0.0.1:8233"


@pytest.mark.parametrize("value", ["javascript:alert(1)", "temporal.example"])
def test_bad_ui_url_names_the_variable(value: str) -> None:
    """A UI URL that is not http(s) is refused naming the variable."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DUALRUN_TEMPORAL_UI_URL": value})
    assert err.value.variable == "DUALRUN_TEMPORAL_UI_URL"


def test_unleash_port_and_where_unleash_runs() -> None:
    """The stack's Unleash listens on DUALRUN_UNLEASH_PORT; a configured URL is not the stack's."""
    embedded = Settings.from_env({"DUALRUN_UNLEASH_PORT": "14242"})
    assert embedded.unleash_port == 14242 and embedded.embedded_unleash
    assert Settings.from_env({}).unleash_port == 4242
    assert not Settings.from_env({"DUALRUN_UNLEASH_URL": "http://u:4242"}).embedded_unleash
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DUALRUN_UNLEASH_PORT": "0"})
    assert err.value.variable == "DUALRUN_UNLEASH_PORT"


def test_workflow_cache_setting() -> None:
    """DUALRUN_WORKFLOW_CACHE: 5,000 runs by default (the SDK keeps 1,000); a bad value names
    the variable."""
    assert Settings.from_env({}).workflow_cache == 5000
    assert Settings.from_env({"DUALRUN_WORKFLOW_CACHE": "12000"}).workflow_cache == 12000
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DUALRUN_WORKFLOW_CACHE": "-1"})
    assert err.value.variable == "DUALRUN_WORKFLOW_CACHE"


def test_legacy_rate_limits_default_to_the_providers() -> None:
    """DUALRUN_LEGACY_RATE_LIMITS paces the legacy robots where named (a provider shared with
    Temporal), else they go at DUALRUN_REGISTRY_RATE_LIMITS; a bad value names the variable."""
    settings = Settings.from_env(
        {"DUALRUN_REGISTRY_RATE_LIMITS": "de=5,com=7", "DUALRUN_LEGACY_RATE_LIMITS": "de=3.75"}
    )
    assert (settings.legacy_rate_limit("de"), settings.rate_limit("de")) == (3.75, 5.0)
    assert settings.legacy_rate_limit("com") == 7.0
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DUALRUN_LEGACY_RATE_LIMITS": "de=0"})
    assert err.value.variable == "DUALRUN_LEGACY_RATE_LIMITS" and "de" in str(err.value)
