"""Reconciliation reports over HTTP (read-only; a read token): the list of runs, the latest
report, a run's report as HTML (default), Markdown or JSON. Stored files are served as they
are; a run without one gets its report built on the fly (nothing is written)."""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg.rows import dict_row
from pydantic import BaseModel

from dualrun.api.errors import ApiError, documented
from dualrun.api.schemas import RUN_ID_PATTERN
from dualrun.wiring import flag_info, workflow_links
from reconciler.report import MEDIA_TYPES, RunNotFound, load
from reconciler.report.model import FlagInfo
from reconciler.report.render_html import CSP

router = APIRouter(tags=["reports"])
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
_TEXT = {"schema": {"type": "string"}}
_REPORT_JSON = {
    "schema": {
        "type": "object",
        "required": ["report_version", "generated_at", "run", "tlds", "findings_total"],
        "properties": {
            "report_version": {"type": "integer"},
            "run": {"type": "object"},
            "tlds": {"type": "object"},
            "findings_total": {"type": "integer"},
        },
    }
}
_REPORT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: HTML (default, self-contained, inline SVG charts), "
        "Markdown or JSON, by `format`, else by the `Accept` header",
        "content": {"text/html": _TEXT, "text/markdown": _TEXT, "application/json": _REPORT_JSON},
    },
    404: documented(404, "No such run, or no full run yet (`not_found`)"),
    422: documented(422),
}
NEWEST_RUN = "Dualrun-Newest-Run"
_FORMATS = {"text/html": "html", "application/json": "json", "text/markdown": "md"}

ReportFormat = Literal["html", "md", "json"]
_ALL = {"html", "md", "json"}
FormatQuery = Annotated[
    ReportFormat | None,
    Query(alias="format", description="html (default), md or json; else the Accept header"),
]

_RUNS = """
SELECT run_id, kind, status, window_start, window_end, finished_at, operations, counts,
       new_findings
FROM reconciliation_runs WHERE %(sweeps)s OR kind <> 'sweep'
ORDER BY run_id DESC LIMIT %(limit)s
"""


def _negotiate(request: Request, given: str | None, default: str, allowed: set[str]) -> str:
    """`?format=` first; else the one format the Accept header names; else the default."""
    if given is not None:
        return given
    accept = request.headers.get("accept", "")
    named = {fmt for media, fmt in _FORMATS.items() if media in accept and fmt in allowed}
    return named.pop() if len(named) == 1 else default


def _links(run_id: int) -> dict[str, str]:
    base = f"/reports/{run_id}"
    return {"html": base, "md": f"{base}?format=md", "json": f"{base}?format=json"}


def _list_page(runs: list[dict[str, Any]]) -> str:
    esc = html.escape
    rows = "".join(
        f'<tr><td><a href="{esc(r["links"]["html"])}">run {r["run_id"]}</a></td>'
        f"<td>{esc(str(r['kind']))}</td><td>{esc(str(r['status']))}</td>"
        f"<td>{esc(str(r['window_start']))} → {esc(str(r['window_end']))}</td>"
        f"<td>{esc(str(r['operations']))}</td><td>{esc(str(r['findings']))}</td>"
        f'<td><a href="{esc(r["links"]["md"])}">md</a> '
        f'<a href="{esc(r["links"]["json"])}">json</a></td></tr>'
        for r in runs
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>dualrun reports</title><style>body{font:14px system-ui,sans-serif;margin:24px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px}</style>"
        '</head><body><h1>Reconciliation reports</h1><p><a href="/reports/latest">latest</a></p>'
        "<table><thead><tr><th>run</th><th>kind</th><th>status</th><th>window</th>"
        f"<th>operations</th><th>findings</th><th>other formats</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>"
    )


class RunOut(BaseModel):
    run_id: int
    kind: str
    status: str
    window_start: str
    window_end: str
    finished_at: str | None
    operations: int | None
    findings: int
    new_findings: int | None
    links: dict[str, str]


_RUNS_SCHEMA = {  # RunsOut, with RunOut inline (a pydantic `$defs` is no OpenAPI reference)
    "type": "object",
    "required": ["latest", "runs"],
    "properties": {
        "latest": {"type": "string"},
        "runs": {"type": "array", "items": RunOut.model_json_schema()},
    },
}


@router.get(
    "/reports",
    operation_id="listReports",
    summary="Reconciliation runs, newest first, with links to their reports",
    responses={
        200: {
            "description": "JSON (default) or an HTML page, by `format`, else by `Accept`",
            "headers": {
                NEWEST_RUN: {
                    "description": "the newest run listed (absent when none is): in every "
                    "format, so the link below holds for the HTML page too",
                    "schema": {"type": "string", "pattern": RUN_ID_PATTERN},
                }
            },
            "links": {
                "GetNewestReport": {
                    "operationId": "getReport",
                    "parameters": {"run_id": f"$response.header.{NEWEST_RUN}"},
                    "description": "the newest run's report",
                }
            },
            "content": {"application/json": {"schema": _RUNS_SCHEMA}, "text/html": _TEXT},
        },
        422: documented(422),
    },
)
async def list_reports(
    request: Request,
    fmt: Annotated[Literal["json", "html"] | None, Query(alias="format")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    sweeps: Annotated[bool, Query(description="include the duplicate sweeps")] = False,
) -> Response:
    async with request.app.state.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_RUNS, {"sweeps": sweeps, "limit": limit})
        rows = await cur.fetchall()
    runs = [
        {
            "run_id": r["run_id"],
            "kind": r["kind"],
            "status": r["status"],
            "window_start": r["window_start"].isoformat(),
            "window_end": r["window_end"].isoformat(),
            "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
            "operations": r["operations"],
            "findings": sum((r["counts"] or {}).values()),
            "new_findings": r["new_findings"],
            "links": _links(r["run_id"]),
        }
        for r in rows
    ]
    newest = {NEWEST_RUN: str(runs[0]["run_id"])} if runs else {}
    if _negotiate(request, fmt, "json", {"json", "html"}) == "html":
        return HTMLResponse(_list_page(runs), headers={**_HEADERS, **newest})
    return JSONResponse({"latest": "/reports/latest", "runs": runs}, headers=newest)


async def _report(request: Request, run_id: int | None, fmt: str) -> Response:
    settings = request.app.state.settings

    async def flags() -> FlagInfo:
        return flag_info(request.app.state.chain.read(), settings.tlds)

    try:
        _, text = await load(
            request.app.state.pool,
            settings,
            run_id,
            fmt,
            flags=flags,
            links=workflow_links(settings),
        )
    except RunNotFound as exc:
        raise ApiError(404, "not_found", str(exc), "run_id") from None
    return Response(text, media_type=MEDIA_TYPES[fmt], headers=_HEADERS)


@router.get(
    "/reports/latest",
    operation_id="getLatestReport",
    responses=_REPORT,
    response_class=Response,
    summary="The latest full run's report",
)
async def latest_report(request: Request, fmt: FormatQuery = None) -> Response:
    return await _report(request, None, _negotiate(request, fmt, "html", _ALL))


@router.get(
    "/reports/{run_id}",
    operation_id="getReport",
    responses=_REPORT,
    response_class=Response,
    summary="A reconciliation run's report",
)
async def run_report(
    request: Request,
    run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN, description="the run's number")],
    fmt: FormatQuery = None,
) -> Response:
    return await _report(request, int(run_id), _negotiate(request, fmt, "html", _ALL))
