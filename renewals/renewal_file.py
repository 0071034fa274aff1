"""The renewals file: CSV, UTF-8, a header naming the columns `domain`, `current_expiry`,
`customer_id`, and optionally `years` (1 when the column is absent or the cell empty) and
`operation_id` (assigned when absent). Every row is checked by the rules every entry point
has (`RenewalRequest.parse`); a row's problem names its line (blank lines and quoted newlines
counted) and its field. `dualrun submit --file` and the upstream auto-renew batch read it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from renewals.errors import InvalidInput
from renewals.model import RenewalRequest

REQUIRED_COLUMNS = ("domain", "current_expiry", "customer_id")
OPTIONAL_COLUMNS = ("years", "operation_id")


@dataclass(frozen=True)
class FileRow:
    """One data row of the file: its line, and the renewal or the problem with it."""

    line: int
    request: RenewalRequest | None = None
    problem: InvalidInput | None = None


def _row(raw: dict[str, str | None], known_tlds: frozenset[str]) -> RenewalRequest:
    def cell(name: str) -> str | None:  # an empty cell is a missing field ("is required")
        return (raw.get(name) or "").strip() or None

    years_raw = cell("years") or "1"
    if not years_raw.lstrip("-").isdigit():
        raise InvalidInput("years", f"must be an integer, got {years_raw[:20]!r}")
    fields: dict[str, object] = {
        "domain": cell("domain"),
        "current_expiry": cell("current_expiry"),
        "customer_id": cell("customer_id"),
        "years": int(years_raw),
    }
    if cell("operation_id") is not None:
        fields["operation_id"] = cell("operation_id")
    return RenewalRequest.parse(fields, known_tlds)


def read_rows(path: Path, known_tlds: frozenset[str]) -> Iterator[FileRow]:
    """Each data row, checked; InvalidInput naming `file` when the file itself cannot be read
    (not UTF-8, not CSV, a column missing from the header, an unknown column)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = set(reader.fieldnames or ())
            missing = set(REQUIRED_COLUMNS) - header
            if missing:
                raise InvalidInput(
                    "file", f"{path.name}: header lacks {', '.join(sorted(missing))}"
                )
            unknown = header - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS)
            if unknown:
                raise InvalidInput(
                    "file", f"{path.name}: unknown column {sorted(unknown)[0]!r} in the header"
                )
            for raw in reader:
                if None in raw:  # more cells than the header names
                    problem = InvalidInput("file", "more cells than the header has columns")
                    yield FileRow(reader.line_num, problem=problem)
                    continue
                try:
                    yield FileRow(reader.line_num, request=_row(raw, known_tlds))
                except InvalidInput as exc:
                    yield FileRow(reader.line_num, problem=exc)
    except UnicodeDecodeError as exc:
        raise InvalidInput("file", f"{path.name}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InvalidInput("file", f"{path.name}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise InvalidInput("file", f"{path.name}: cannot be read ({exc.strerror})") from None


def read_all(path: Path, known_tlds: frozenset[str]) -> list[RenewalRequest]:
    """Every renewal of the file, all or nothing: the first bad row is raised, naming its line."""
    requests = []
    for row in read_rows(path, known_tlds):
        if row.problem is not None:
            raise InvalidInput(
                row.problem.field, f"{path.name} line {row.line}: {row.problem.problem}"
            )
        assert row.request is not None
        requests.append(row.request)
    return requests
