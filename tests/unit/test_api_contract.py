"""The API's contract without services: the published patterns say exactly what the server
accepts (checked with jsonschema-rs, the validator schemathesis uses), and tokens are compared
in constant time."""

from __future__ import annotations

import hmac
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dualrun.api import auth
from dualrun.api.app import create_app
from dualrun.api.auth import Access
from dualrun.api.schemas import renewal_in
from renewals.domains import DEFAULT_TLDS
from renewals.errors import InvalidInput
from renewals.model import RenewalRequest
from renewals.settings import Settings

SPEC = create_app(Settings.from_env({"DUALRUN_API_TOKEN": "w"})).openapi()
BODY = SPEC["paths"]["/renewals"]["post"]["requestBody"]["content"]["application/json"]["schema"]
PUBLISHED = jsonschema_rs.Draft202012Validator(BODY, validate_formats=True)
MODEL = renewal_in(DEFAULT_TLDS)
VALID = {"domain": "a.fr", "years": 1, "current_expiry": "2027-01-01", "customer_id": "c"}


def _server_takes(document: dict[str, Any]) -> bool:
    """What POST /renewals does with a body: the shared rules, then the published model."""
    try:
        RenewalRequest.parse(document, DEFAULT_TLDS)
        MODEL.model_validate(document)
    except (InvalidInput, ValidationError):
        return False
    return True


labels = st.text(alphabet="aAxXnN09-", max_size=66) | st.text(alphabet="ab-", max_size=6).map(
    lambda rest: "xn--" + rest
)
names = st.builds(
    lambda label, tld, end: f"{label}.{tld}{end}",
    labels,
    st.sampled_from(["fr", "FR", "Info", "com", "x", "", "de.fr"]),
    st.sampled_from(["", "", ".", ".."]),
)


@given(names)
def test_ascii_names_the_schema_allows_are_exactly_the_names_served(name: str) -> None:
    """An ASCII name matches the published pattern if and only if the server takes it; an
    `xn--` label may still be refused (the documented IDNA 422), never the other way round."""
    published = PUBLISHED.is_valid({**VALID, "domain": name})
    served = _server_takes({**VALID, "domain": name})
    if name.lower().startswith("xn--"):
        assert published or not served
    else:
        assert published == served


@given(st.text(max_size=80), st.sampled_from(["domain", "customer_id", "current_expiry"]))
def test_the_server_never_takes_what_the_schema_refuses(text: str, field: str) -> None:
    """Any text at all, in any string field: served implies published (no lenient reading
    behind the document's back: spaces, line breaks, other digits, other scripts)."""
    document = {**VALID, field: text}
    if _server_takes(document):
        assert PUBLISHED.is_valid(document)


@pytest.mark.parametrize(
    ("token", "granted"),
    [
        ("w" * 40, Access.WRITE),
        ("read", Access.READ),
        ("w" * 39, Access.NONE),
        ("w" * 41, Access.NONE),
        ("", Access.NONE),
    ],
    ids=["write", "read", "shorter", "longer", "empty"],
)
def test_tokens_are_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, token: str, granted: Access
) -> None:
    """Every token is compared with both configured ones (even unset), through
    hmac.compare_digest, on digests of one length: neither content nor length shows."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    both = Settings.from_env({"DUALRUN_API_TOKEN": "w" * 40, "DUALRUN_API_READ_TOKEN": "read"})
    assert auth.grant(both, token) == granted
    assert calls == [(32, 32), (32, 32)]
    calls.clear()
    write_only = Settings.from_env({"DUALRUN_API_TOKEN": "w" * 40})
    assert auth.grant(write_only, token) == (Access.WRITE if granted == Access.WRITE else 0)
    assert calls == [(32, 32), (32, 32)]
