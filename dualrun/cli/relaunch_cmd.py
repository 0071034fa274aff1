"""`dualrun relaunch`: relaunch a TLD's failed (or stuck) renewals, paced, resumable.

Options are read as text and validated before anything connects: bad input ends with one line
naming the field (exit 2) and nothing written. Exit 1 when an item failed to relaunch.
"""

from __future__ import annotations

import asyncio

import click

from dualrun.cli.context import EXIT_FAILURE, AppContext, emit, pass_app
from dualrun.relaunch import jobs
from dualrun.relaunch.model import (
    DEFAULT_RATE,
    DEFAULT_STUCK_AFTER_MIN,
    MAX_RATE,
    Selection,
    Summary,
    parse_positive,
)
from dualrun.relaunch.runner import Relauncher
from dualrun.wiring import engines
from renewals.db.pool import async_pool
from renewals.errors import InvalidInput

CONCURRENCY = 8


def _job_id(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise InvalidInput("resume", f"must be a job id (a positive integer), got {raw[:20]!r}")
    return int(raw)


def _text(summary: Summary) -> str:
    if summary.dry_run:
        lines = []
        for item in summary.items:
            how = item.get("reason") or ""
            if item["action"] == "reset":
                how = f"to event {item['reset_event_id']}, before {item.get('activity') or 'start'}"
            lines.append(
                f"{item['operation_id']}  {item['domain']}  {item['engine']}  {item['status']}"
                f"  {item['action']}" + (f"  ({how})" if how else "")
            )
        actions = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_action.items())) or "none"
        lines.append(f"dry run: {summary.selected} selected ({actions}); nothing changed")
        return "\n".join(lines)
    rate = f", {summary.rate_achieved:.1f}/s" if summary.rate_achieved else ""
    lines = [
        f"relaunch job {summary.job_id}{' (resumed)' if summary.resumed else ''}:"
        f" selected {summary.selected}, relaunched {summary.relaunched}, skipped"
        f" {summary.skipped}, failed {summary.failed}, pending {summary.pending}"
        f" in {summary.elapsed_s:.1f}s{rate}"
    ]
    lines += [
        f"  {p['status']}: {p['operation_id']} ({p['engine']}): {p['detail']}"
        for p in summary.items
    ]
    return "\n".join(lines)


@click.command("relaunch")
@click.option("--tld", help="TLD whose operations are relaunched.")
@click.option("--status", help="failed (default), or stuck: unfinished after --stuck-after.")
@click.option("--since", help="Window start, ISO date or date-time (UTC if naive). [until - 24h]")
@click.option("--until", help="Window end, exclusive. [now]")
@click.option(
    "--stuck-after",
    help=f"Minutes before an unfinished operation is stuck. [{DEFAULT_STUCK_AFTER_MIN:g}]",
)
@click.option("--rate", default=str(DEFAULT_RATE), show_default=True, help="Relaunches per second.")
@click.option("--include-refusals", is_flag=True, help="Relaunch business refusals too.")
@click.option("--resume", "resume", help="Resume job JOB (a rerun of a selection resumes its own).")
@click.option("--dry-run", is_flag=True, help="List what would be relaunched; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def relaunch(
    app: AppContext,
    tld: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    stuck_after: str | None,
    rate: str,
    include_refusals: bool,
    resume: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Relaunch failed or stuck renewals of a TLD created in [since, until).

    Temporal renewals are reset to before their last failed activity (a fresh run under the same
    key when the history is gone); legacy ones are requeued. The job and each item's state are
    recorded: rerunning the same selection (or --resume JOB) resumes an interrupted job without
    relaunching anything twice. Business refusals and cancel-requested renewals are skipped.
    """
    per_second = parse_positive(rate, "rate", MAX_RATE)
    job_id: int | None = None
    if resume is not None:
        job_id = _job_id(resume)
        given = {"tld": tld, "status": status, "since": since, "until": until}
        extra = [k for k, v in {**given, "stuck_after": stuck_after}.items() if v is not None]
        if extra or include_refusals:
            raise InvalidInput("resume", f"takes no selection options (got {extra[0]})")
        selection = None
    else:
        selection = Selection.parse(
            tld=tld,
            status=status or "failed",
            since=since,
            until=until,
            stuck_after=stuck_after or DEFAULT_STUCK_AFTER_MIN,
            include_refusals=include_refusals,
            known_tlds=app.settings.tlds,
        )

    async def run() -> Summary:
        pool = await async_pool(app.settings.dsn, max_size=CONCURRENCY + 3, name="relaunch")
        try:
            chosen = selection
            if job_id is not None:
                try:
                    chosen, _ = await jobs.load_job(pool, job_id)
                except jobs.JobNotFound as exc:
                    raise InvalidInput("resume", f"no relaunch job {job_id}") from exc
            assert chosen is not None
            runner = Relauncher(
                pool, engines(app.settings, pool), rate=per_second, concurrency=CONCURRENCY
            )
            if dry_run:
                return await runner.dry_run(chosen, job_id)
            return await runner.run(chosen, job_id)
        finally:
            await pool.close()

    summary = asyncio.run(run())
    emit(summary.as_dict(), as_json, _text(summary))
    return EXIT_FAILURE if summary.failed else 0


COMMANDS = [relaunch]
