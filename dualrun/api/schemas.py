"""The API's bodies, and the patterns its inputs must match.

A request body is checked twice: against the pydantic model published in the OpenAPI document
(so every pattern, length, range and required field the document states is enforced, with
the same regular expressions), then by `RenewalRequest.parse`, the rules every entry point
shares. What the second adds and no JSON Schema can say (a non-ASCII label, or an `xn--` one,
must be valid IDNA 2008) is stated in the field's description and answered with a 422.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, create_model

from dualrun.flags.model import FlagSourceKind
from renewals.domains import MAX_LABEL_LENGTH
from renewals.model import MAX_YEARS, MIN_YEARS, Engine, Mode, OperationStatus, Step

# One grammar for JSON Schema (ECMA 262), the Rust engine pydantic validates with and Python's
# `re`: character classes, bounded repeats and alternation only; no lookaround, no `\d`/`\s`
# (their meaning differs between the three); `$` ends the text in all of them once the
# text cannot end with a line break (every class below excludes one).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
RUN_ID_PATTERN = r"^[0-9]{1,18}$"
REASON_PATTERN = r"^[^\u0000-\u001F\u007F]*$"
# A reason that must say something: one line with a character other than a space.
STATED_REASON_PATTERN = r"^[^\u0000-\u001F\u007F]*[^\u0000-\u0020\u007F][^\u0000-\u001F\u007F]*$"
MAX_REASON = 200

_ALNUM = "A-Za-z0-9"
_LDH = "A-Za-z0-9-"
_U = "\\u0080-\\uD7FF\\uE000-\\uFFFF"  # any non-ASCII character of the BMP
_ASCII_LABEL = (
    f"[{_ALNUM}](?:[{_LDH}]{{0,2}}[{_ALNUM}])?"  # 1-4 characters
    # 5-63, no '--' in positions 3-4 (RFC 5891 §4.2.3.1)
    f"|[{_ALNUM}][{_LDH}](?:[{_ALNUM}][{_LDH}]|-[{_ALNUM}])"
    f"[{_LDH}]{{0,{MAX_LABEL_LENGTH - 5}}}[{_ALNUM}]"
)
_A_LABEL = f"[xX][nN]--[{_LDH}]{{0,{MAX_LABEL_LENGTH - 5}}}[{_ALNUM}]"
_U_LABEL = f"(?:[{_ALNUM}][{_LDH}]{{0,61}})?[{_U}](?:[{_ALNUM}{_U}-]{{0,61}}[{_ALNUM}{_U}])?"
ID_RULE = "1-64 characters of letters, digits, '.', '_', ':' or '-', the first a letter or digit"


def tld_alternatives(tlds: frozenset[str]) -> str:
    """The TLDs, case-insensitively (JSON Schema has no `i` flag)."""
    spelled = ["".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in t) for t in tlds]
    return "|".join(sorted(spelled))


def domain_pattern(tlds: frozenset[str]) -> str:
    """`label.tld`, an optional final dot, nothing else."""
    label = f"{_ASCII_LABEL}|{_A_LABEL}|{_U_LABEL}"
    return f"^(?:{label})\\.(?:{tld_alternatives(tlds)})\\.?$"


def domain_rule(tlds: frozenset[str]) -> str:
    known = ", ".join(f".{t}" for t in sorted(tlds))
    return (
        f"a name directly under a known TLD ({known}): label.tld, the label 1-63 letters, "
        "digits and hyphens (no hyphen first or last, no '--' in positions 3-4 unless an "
        "'xn--' A-label), or an internationalised label; an A-label or a non-ASCII label must "
        "be valid IDNA 2008 (UTS 46 mapping), else 422 naming `domain`"
    )


def pattern_messages(tlds: frozenset[str]) -> dict[str, str]:
    """What each pattern means, for the error of a value that does not match it."""
    return {
        "domain": f"must be {domain_rule(tlds)}",
        "customer_id": f"must be {ID_RULE}",
        "operation_id": f"must be {ID_RULE}",
        "current_expiry": "must be a date YYYY-MM-DD",
        "run_id": "must be a run number (digits)",
        "reason": "must be one line of text without control characters",
    }


def renewal_in(tlds: frozenset[str]) -> type[BaseModel]:
    """The body of `POST /renewals` for these TLDs."""
    fields: dict[str, Any] = {
        "domain": (
            str,
            Field(
                pattern=domain_pattern(tlds),
                max_length=253,
                examples=["example.fr", "bücher.de"],
                description=domain_rule(tlds),
            ),
        ),
        "years": (StrictInt, Field(ge=MIN_YEARS, le=MAX_YEARS, examples=[1])),
        "current_expiry": (
            str,
            Field(
                pattern=DATE_PATTERN,
                json_schema_extra={"format": "date"},
                examples=["2027-03-01"],
                description="the expiry being renewed from: a real date, YYYY-MM-DD",
            ),
        ),
        "customer_id": (
            str,
            Field(pattern=ID_PATTERN, max_length=64, examples=["cust-42"], description=ID_RULE),
        ),
        "operation_id": (
            str | None,
            Field(
                default=None,
                pattern=ID_PATTERN,
                max_length=64,
                description=f"{ID_RULE}; assigned when absent",
            ),
        ),
    }
    config = ConfigDict(extra="forbid", strict=True, title="RenewalIn")
    model: type[BaseModel] = create_model(
        "RenewalIn", __config__=config, __doc__="A renewal to submit.", **fields
    )
    return model


class CancelIn(BaseModel):
    """Why the renewal is cancelled (optional; the whole body may be left out)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(
        default="requested through the API",
        max_length=MAX_REASON,
        pattern=REASON_PATTERN,
        description="one line, no control characters",
    )


class SubmitOut(BaseModel):
    operation_id: str
    idempotency_key: str = Field(examples=["renew:example.fr:2027-03-01"])
    engine: Engine
    mode: Mode
    status: OperationStatus
    deduplicated: bool = Field(description="the renewal already had this operation")
    dispatch_error: str | None = Field(
        default=None,
        description="present when the engine could not be handed the renewal: the operation "
        "is recorded (todo); submitting it again retries the hand-over",
    )


class RoutingOut(BaseModel):
    mode: Mode
    source: str
    bucket: int | None
    rollout: int | None
    reason: str


class OutcomeOut(BaseModel):
    new_expiry: str | None = Field(json_schema_extra={"format": "date"})
    registry_transaction_id: str | None
    charged_cents: int | None
    refunded_cents: int | None
    currency: str | None
    error_code: str | None
    error_message: str | None
    finished_at: str | None = Field(json_schema_extra={"format": "date-time"})


class RenewalOut(BaseModel):
    """An operation: the renewal it carries out, and where it stands."""

    operation_id: str
    idempotency_key: str
    domain: str = Field(description="as recorded: normalised (lower case, A-labels)")
    years: int = Field(ge=1, le=10)
    current_expiry: str = Field(json_schema_extra={"format": "date"})
    customer_id: str
    engine: Engine
    mode: Mode | None = Field(description="null for an operation the router did not create")
    status: OperationStatus
    step: Step | None
    workflow_id: str | None
    cancel_requested: bool
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    routing: RoutingOut | None
    outcome: OutcomeOut
    engine_state: dict[str, Any] = Field(description="what the engine itself says")


class CancelOut(BaseModel):
    operation_id: str
    engine: Engine
    accepted: bool
    status: str
    message: str


class ExplainOut(BaseModel):
    domain: str
    engine: Engine
    mode: Mode
    bucket: int
    rollout: int | None
    source: FlagSourceKind
    reason: str


class TldFlag(BaseModel):
    tld: str
    mode: Mode
    rollout: int | None
    source: FlagSourceKind


class FlagsOut(BaseModel):
    flag: str
    source: FlagSourceKind
    enabled: bool
    detail: str
    tlds: list[TldFlag]


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"]
    database: bool
    flags: FlagSourceKind
