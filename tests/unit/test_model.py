"""The renewal request: validation, normalisation and the idempotency key (DESIGN §3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renewals.domains import normalise_domain, unicode_form
from renewals.errors import InvalidInput
from renewals.model import OperationStatus, RenewalRequest, add_years, idempotency_key

GOOD: dict[str, Any] = {
    "domain": "example.fr",
    "years": 1,
    "current_expiry": "2027-03-01",
    "customer_id": "cust-42",
}


def parse(**changes: Any) -> RenewalRequest:
    raw = {**GOOD, **changes}
    return RenewalRequest.parse({k: v for k, v in raw.items() if v is not ...})


@pytest.mark.parametrize(
    ("given_name", "stored"),
    [
        ("example.fr", "example.fr"),
        ("EXAMPLE.FR", "example.fr"),
        ("Example.Info.", "example.info"),
        ("  spaced.com ", "spaced.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.DE", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("élysée.fr", "xn--lyse-9oad.fr"),
        ("a.eu", "a.eu"),
        ("a-b-c.com", "a-b-c.com"),
        ("1and1.info", "1and1.info"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
    ],
)
def test_names_are_normalised_not_refused(given_name: str, stored: str) -> None:
    """Upper case, trailing dots and IDNs are stored as lower-case A-labels."""
    assert parse(domain=given_name).domain == stored


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"domain": ""}, "domain", "empty"),
        ({"domain": "example"}, "domain", "unknown TLD"),
        ({"domain": "example.xyz"}, "domain", "unknown TLD .xyz"),
        ({"domain": "www.example.fr"}, "domain", "directly under .fr"),
        ({"domain": "exa..mple.fr"}, "domain", "empty label"),
        ({"domain": ".example.fr"}, "domain", "empty label"),
        ({"domain": "-example.fr"}, "domain", "hyphen"),
        ({"domain": "example-.fr"}, "domain", "hyphen"),
        ({"domain": "ab--cd.fr"}, "domain", "positions 3-4"),
        ({"domain": "xn--zz.fr"}, "domain", "A-label"),
        ({"domain": "ex_ample.fr"}, "domain", "domain"),
        ({"domain": "exa mple.fr"}, "domain", "domain"),
        ({"domain": "x" * 64 + ".fr"}, "domain", "longer than 63"),
        ({"domain": ("a" * 60 + ".") * 5 + "fr"}, "domain", "longer than 253"),
        ({"domain": 42}, "domain", "must be a string"),
        ({"domain": ...}, "domain", "required"),
        ({"years": 0}, "years", "between 1 and 10"),
        ({"years": 11}, "years", "between 1 and 10"),
        ({"years": -1}, "years", "between 1 and 10"),
        ({"years": "2"}, "years", "integer"),
        ({"years": 1.5}, "years", "integer"),
        ({"years": True}, "years", "integer"),
        ({"years": ...}, "years", "required"),
        ({"current_expiry": "2027-02-30"}, "current_expiry", "not a real date"),
        ({"current_expiry": "2027-13-01"}, "current_expiry", "not a real date"),
        ({"current_expiry": "01/03/2027"}, "current_expiry", "YYYY-MM-DD"),
        ({"current_expiry": "2027-03-01T00:00:00"}, "current_expiry", "YYYY-MM-DD"),
        ({"current_expiry": dt.datetime(2027, 3, 1)}, "current_expiry", "not a date and time"),
        ({"current_expiry": 20270301}, "current_expiry", "date string"),
        ({"current_expiry": ...}, "current_expiry", "required"),
        ({"customer_id": ""}, "customer_id", "1-64 characters"),
        ({"customer_id": "a b"}, "customer_id", "1-64 characters"),
        ({"customer_id": "c" * 65}, "customer_id", "1-64 characters"),
        ({"customer_id": 7}, "customer_id", "must be a string"),
        ({"customer_id": None}, "customer_id", "required"),
        ({"operation_id": "bad id!"}, "operation_id", "1-64 characters"),
        ({"operation_id": "op-1\n"}, "operation_id", "1-64 characters"),
        ({"customer_id": "cust-1\n"}, "customer_id", "1-64 characters"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    """Each bad input raises InvalidInput naming the field and the problem."""
    with pytest.raises(InvalidInput) as err:
        parse(**changes)
    assert err.value.field == field
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"{field}: ")


def test_request_must_be_an_object() -> None:
    """A non-mapping payload is refused as a whole."""
    with pytest.raises(InvalidInput) as err:
        RenewalRequest.parse(["example.fr"])  # type: ignore[arg-type]
    assert err.value.field == "request"


def test_unknown_tld_uses_the_configured_set() -> None:
    """The TLDs the service knows come from configuration."""
    assert RenewalRequest.parse({**GOOD, "domain": "a.nl"}, frozenset({"nl"})).domain == "a.nl"
    with pytest.raises(InvalidInput):
        RenewalRequest.parse(GOOD, frozenset({"nl"}))


def test_idempotency_key_names_the_renewal_period() -> None:
    """The key is renew:{domain}:{current_expiry}, from the normalised name."""
    r = parse(domain="Bücher.DE", current_expiry="2027-01-31")
    assert r.idempotency_key == "renew:xn--bcher-kva.de:2027-01-31"
    assert r.tld == "de"


def test_operation_id_is_assigned_when_absent_and_kept_when_given() -> None:
    """An absent operation_id gets a fresh one; a given one is kept."""
    a, b = parse(), parse()
    assert a.operation_id != b.operation_id and a.operation_id.startswith("op-")
    assert parse(operation_id="legacy-123").operation_id == "legacy-123"


def test_add_years_handles_leap_days() -> None:
    """29 February plus a year is 28 February."""
    assert add_years(dt.date(2028, 2, 29), 1) == dt.date(2029, 2, 28)
    assert add_years(dt.date(2028, 2, 29), 4) == dt.date(2032, 2, 29)
    assert add_years(dt.date(2027, 3, 1), 10) == dt.date(2037, 3, 1)


def test_terminal_statuses() -> None:
    """done, failed, cancelled and superseded are terminal; error is retried by legacy."""
    assert {s for s in OperationStatus if s.terminal} == {
        OperationStatus.DONE,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.SUPERSEDED,
    }


ldh_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z").filter(
    lambda s: s[2:4] != "--"
)
unicode_label = st.text(
    alphabet=st.characters(whitelist_categories=("Ll",), min_codepoint=0xE0, max_codepoint=0x24F),
    min_size=1,
    max_size=12,
)
tlds = st.sampled_from(["com", "de", "eu", "fr", "info"])


@given(label=ldh_label | unicode_label, tld=tlds)
def test_every_accepted_name_round_trips(label: str, tld: str) -> None:
    """An accepted name normalises to itself, and its U-label form normalises back to it."""
    try:
        stored = normalise_domain(f"{label}.{tld}")
    except InvalidInput:
        return  # refusals are covered above; this property is about accepted names
    assert normalise_domain(stored) == stored
    assert normalise_domain(unicode_form(stored)) == stored
    assert normalise_domain(stored.upper()) == stored
    assert stored == stored.lower() and stored.isascii()


@given(
    label=ldh_label,
    tld=tlds,
    day=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 12, 31)),
    years=st.integers(1, 10),
)
def test_key_is_stable(label: str, tld: str, day: dt.date, years: int) -> None:
    """The key depends only on the normalised name and the expiry, not on case, years or ids."""
    a = RenewalRequest.parse(
        {
            "domain": f"{label}.{tld}".upper(),
            "years": years,
            "current_expiry": day.isoformat(),
            "customer_id": "c1",
        }
    )
    b = RenewalRequest.parse(
        {"domain": f"{label}.{tld}", "years": 1, "current_expiry": day, "customer_id": "c2"}
    )
    assert a.idempotency_key == b.idempotency_key == idempotency_key(b.domain, day)
