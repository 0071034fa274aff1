"""schemathesis hooks for `.ci/api-contract` (loaded by `schemathesis.toml`).

One rule of the API cannot be written in JSON Schema: an internationalised label of a domain
name (non-ASCII, or an `xn--` A-label) must be valid IDNA 2008 (UTS 46 mapping). The
OpenAPI document says so and documents the 422 naming `domain`; schemathesis, drawing any
character the pattern allows, draws invalid ones. `positive_data_acceptance` is therefore
turned off for the two operations that take a domain (`schemathesis.toml`) and replaced by
this check: the very same check, which lets through that documented 422 only, only for a
request whose domain has an internationalised label. ASCII names stay held to the schema.

The reports answer HTML and Markdown too; a deserializer hands schemathesis their text, so
it checks them against their documented schema (a string) and follows the JSON-only link of
`GET /reports` only when the answer is JSON.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

DOMAIN_OPERATIONS = {
    "POST /renewals": "body",
    "POST /renewals/batch": "batch",
    "GET /route/explain": "query",
}


@schemathesis.deserializer("text/html", "text/markdown")
def text(ctx: Any, response: Any) -> str:
    """The page as text (its documented schema is a string)."""
    return str(response.text)


def _domains(case: Any, where: str) -> list[str]:
    body = case.body if isinstance(case.body, dict) else {}
    if where == "body":
        names: Any = body.get("domain")
    elif where == "batch":
        rows = body.get("renewals")
        names = (
            [r.get("domain") for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        )
    else:
        names = (case.query or {}).get("domain")
    names = names if isinstance(names, list) else [names]
    return [name for name in names if isinstance(name, str)]


def _internationalised(name: str) -> bool:
    label = name.split(".")[0]
    return not label.isascii() or label.lower().startswith("xn--")


def _refused_field(response: Any) -> str | None:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return error.get("field") if isinstance(error, dict) else None


@schemathesis.check
def positive_data_acceptance_idna(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, with the documented IDNA 422 of a domain-taking operation."""
    where = DOMAIN_OPERATIONS.get(case.operation.label)
    if where is None:
        return None  # the built-in check runs there
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        field = _refused_field(response) or ""
        documented = (
            response.status_code == 422
            and (field == "domain" or (where == "batch" and field.endswith(".domain")))
            and any(_internationalised(name) for name in _domains(case, where))
        )
        if documented:
            return None
        raise
