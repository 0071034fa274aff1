"""Alerts for new findings: a structlog event, a Prometheus counter, and a webhook POST.

The webhook is retried with backoff and never blocks the run: the run is recorded first, and
a delivery that still fails leaves the finding pending, so the next run tries again — nobody
is alerted twice for one finding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import structlog
from prometheus_client import Counter

from reconciler.model import ALERTING, Finding
from renewals.logs import redact_text

log = structlog.get_logger(__name__)

FINDINGS_TOTAL = Counter(
    "dualrun_findings_total", "New reconciliation findings that alert", ["kind", "tld"]
)
WEBHOOK_FAILURES = Counter("dualrun_alert_webhook_failures_total", "Webhook deliveries given up")


def prime(tlds: Iterable[str]) -> None:
    """Export every alerting (kind, tld) at 0, so the first finding shows as an increase.

    A labelled counter appears only when first incremented, at 1: `increase()` would miss it.
    """
    for kind in sorted(ALERTING):
        for tld in sorted(tlds):
            FINDINGS_TOTAL.labels(kind=kind.value, tld=tld)


def announce(findings: Sequence[Finding], new_keys: set[str]) -> int:
    """Log and count each new alerting finding, once (it is new only in its first run)."""
    count = 0
    for f in findings:
        if f.key in new_keys and f.kind in ALERTING:
            count += 1
            FINDINGS_TOTAL.labels(kind=f.kind.value, tld=f.tld or "").inc()
            log.warning(
                "reconcile.alert",
                kind=f.kind.value,
                severity=f.severity.value,
                tld=f.tld,
                domain=f.domain,
                idempotency_key=f.idempotency_key,
                operation_ids=list(f.operation_ids),
                summary=f.summary,
            )
    return count


def payload(row: dict[str, Any]) -> dict[str, Any]:
    key = row["idempotency_key"] or ""
    return {
        "kind": row["kind"],
        "severity": row["severity"],
        "domain": key.split(":")[1] if key.count(":") >= 2 else None,
        "tld": row["tld"],
        "idempotency_key": row["idempotency_key"],
        "operation_ids": list(row["operation_ids"]),
        "summary": row["summary"],
        "finding_key": row["finding_key"],
    }


class Webhook:
    def __init__(
        self, url: str | None, *, attempts: int = 4, base_delay_s: float = 0.5, timeout_s: float = 5
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.timeout_s = timeout_s

    async def _post(self, http: httpx.AsyncClient, body: dict[str, Any]) -> bool:
        assert self.url is not None
        for attempt in range(1, self.attempts + 1):
            try:
                response = await http.post(self.url, json=body)
                if response.status_code < 300:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = redact_text(f"{type(exc).__name__}: {exc}", [self.url])
            log.info(
                "reconcile.webhook.retry",
                attempt=attempt,
                problem=problem,
                finding_key=body["finding_key"],
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.base_delay_s * 2 ** (attempt - 1))
        WEBHOOK_FAILURES.inc()
        log.error("reconcile.webhook.failed", finding_key=body["finding_key"])
        return False

    async def deliver(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """POST each pending alert (concurrently); return the finding keys delivered.

        Without a webhook configured, the log event and the counter were the alert.
        """
        if not self.url:
            return [r["finding_key"] for r in rows]
        if not rows:
            return []
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            results = await asyncio.gather(*(self._post(http, payload(r)) for r in rows))
        return [r["finding_key"] for r, ok in zip(rows, results, strict=True) if ok]
