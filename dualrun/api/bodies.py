"""Request bodies read by hand, so that every malformed one is a 422 naming `body` (never a
framework 400), and the OpenAPI request body each operation declares."""

import json
from typing import Any

from fastapi import Request

from renewals.errors import InvalidInput


async def json_body(request: Request, *, optional: bool = False) -> Any:
    """The body as JSON, or InvalidInput naming `body` (a document that is not Unicode text,
    with a lone surrogate escape, is refused too: nothing downstream could store it)."""
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        document = json.loads(raw, parse_float=_number)
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("body", "contains a lone surrogate escape: not Unicode text") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("body", "is not a valid JSON document") from None
    return document


def _number(text: str) -> float | int:
    """A JSON number: 6.0 and 6 are the same integer to JSON Schema, and so they are here."""
    value = float(text)
    return int(value) if value.is_integer() else value


def json_request_body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}
