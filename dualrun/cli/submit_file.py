"""`dualrun submit --file renewals.csv`: a month-start batch through the router.

All or nothing on input: the whole file is read and checked first; any bad row and nothing is
written, every bad row named with its line and field (exit 2). A valid file is submitted in
batches of 1,000 (`RenewalService.submit_batch`): each row gets its result, created or
deduplicated (a renewal given twice, even in one file, is answered once), or refused as a
conflict (the key is taken with other parameters: exit 2, the other rows applied). A row
whose engine could not be handed the renewal stays `todo` (exit 1; submitting it again
retries). Progress: a bar on a terminal, else a `submit.progress` log line per batch.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dualrun.cli.context import EXIT_BAD_INPUT, EXIT_FAILURE, AppContext, emit
from dualrun.routing.answers import BatchResult, RowResult
from dualrun.routing.batch import MAX_BATCH
from dualrun.wiring import renewal_service
from renewals.errors import InvalidInput
from renewals.model import RenewalRequest
from renewals.renewal_file import FileRow, read_rows

log = structlog.get_logger(__name__)

SHOWN_PROBLEMS = 50  # bad lines printed (the count says how many more)


def _checked(path: Path, app: AppContext) -> tuple[list[RenewalRequest], list[int]]:
    """The file's renewals and their lines; InvalidInput naming every bad line."""
    rows: list[FileRow] = list(read_rows(path, app.settings.tlds))
    bad = [r for r in rows if r.problem is not None]
    if bad:
        lines = [f"{path.name} line {r.line}: {r.problem}" for r in bad[:SHOWN_PROBLEMS]]
        if len(bad) > SHOWN_PROBLEMS:
            lines.append(f"... and {len(bad) - SHOWN_PROBLEMS} more bad lines")
        first = bad[0].problem
        assert first is not None
        raise InvalidInput(
            first.field,
            f"{len(bad)} of {len(rows)} rows refused, nothing written:\n" + "\n".join(lines),
        )
    if not rows:
        raise InvalidInput("file", f"{path.name}: no renewals in it")
    return [r.request for r in rows if r.request is not None], [r.line for r in rows]


async def _submit(app: AppContext, requests: list[RenewalRequest]) -> list[RowResult]:
    results: list[RowResult] = []
    bar = None
    if sys.stderr.isatty():
        bar = Progress(
            TextColumn("submit"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        task = bar.add_task("submit", total=len(requests))
        bar.start()
    try:
        async with renewal_service(app.settings, pool_size=2) as service:
            for start in range(0, len(requests), MAX_BATCH):
                batch = await service.submit_batch(requests[start : start + MAX_BATCH])
                results.extend(replace(r, index=start + r.index) for r in batch.rows)
                if bar is not None:
                    bar.update(task, completed=len(results))
                else:
                    log.info("submit.progress", done=len(results), total=len(requests))
    finally:
        if bar is not None:
            bar.stop()
    return results


def submit_file(app: AppContext, path: Path, as_json: bool) -> int:
    requests, lines = _checked(path, app)
    results = asyncio.run(_submit(app, requests))
    rows: list[dict[str, Any]] = [{"line": lines[r.index], **r.as_dict()} for r in results]
    for row in rows:
        del row["index"]
    summary = BatchResult(tuple(results)).summary()
    text = [
        f"{path.name}: {summary['rows']} rows: {summary['created']} created, "
        f"{summary['deduplicated']} deduplicated, {summary['refused']} refused"
        + (f", {summary['dispatch_errors']} not handed over" if summary["dispatch_errors"] else "")
    ]
    for row in rows:
        if not row["ok"]:
            text.append(f"line {row['line']}: {row['error']['code']}: {row['error']['message']}")
        elif "dispatch_error" in row:
            text.append(f"line {row['line']}: stays todo: {row['dispatch_error']}")
    emit({"summary": summary, "results": rows}, as_json, "\n".join(text))
    if summary["refused"]:
        return EXIT_BAD_INPUT
    return EXIT_FAILURE if summary["dispatch_errors"] else 0


file_option = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A CSV of renewals (header: domain,current_expiry,customer_id[,years]"
    "[,operation_id]): a month-start batch, checked whole first, then submitted "
    f"{MAX_BATCH} at a time.",
)
