"""structlog setup: JSON when stdout is not a terminal, console otherwise; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api_?key|authorization|dsn)", re.I)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I
)
_KV_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|token|api_?key|secret)\s*[=:]\s*)(?P<val>[^\s&,;]+)", re.I
)
MASK = "***"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask DSN passwords, `password=...` pairs and every known secret value in a string."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)


class Redactor:
    """structlog processor: no secret leaves through a log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, key: str | None, value: Any) -> Any:
        if key is not None and _SECRET_KEYS.search(key) and value not in (None, "", False):
            return MASK
        if isinstance(value, str):
            return redact_text(value, self.secrets)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, v) for v in value]
        if isinstance(value, BaseException):
            return redact_text(repr(value), self.secrets)
        return value

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = self._clean(key if key != "event" else None, event[key])
        return event


class RedactingFormatter(logging.Formatter):
    """The standard formatter, with every secret masked in the line and its traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), self.secrets)


LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_rendering = {"json": True}  # what `configure` chose last (before any: JSON, for machines)


def json_lines() -> bool:
    """Log lines are JSON, for machines (else console lines a person reads on a terminal)."""
    return _rendering["json"]


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Configure structlog (and stdlib logging through it) once per process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    _rendering["json"] = as_json
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:  # stdlib lines (uvicorn's tracebacks) too
        handler.setFormatter(RedactingFormatter(secrets))
    # A library that set up its own handlers (uvicorn's default log config does, with
    # propagate off) would print past the redaction: its lines go through the root's instead.
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
