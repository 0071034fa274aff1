"""Domain names: IDNA to A-labels, lower case, RFC 1035/5891 length and hyphen rules."""

from __future__ import annotations

import re

import idna

from renewals.errors import InvalidInput

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LDH = re.compile(r"^[a-z0-9-]+$")

DEFAULT_TLDS: frozenset[str] = frozenset({"com", "de", "eu", "fr", "info"})


def _check_label(label: str, field: str) -> None:
    if not label:
        raise InvalidInput(field, "empty label (two dots in a row, or a leading dot)")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(field, f"label {label[:20]!r}... is longer than {MAX_LABEL_LENGTH}")
    if not _LDH.match(label):
        raise InvalidInput(field, f"label {label!r} has characters other than a-z, 0-9 and '-'")
    if label.startswith("-") or label.endswith("-"):
        raise InvalidInput(field, f"label {label!r} starts or ends with a hyphen")
    if label[2:4] == "--" and not label.startswith("xn--"):
        raise InvalidInput(
            field, f"label {label!r} has '--' in positions 3-4 but is not an A-label"
        )


def normalise_domain(
    raw: object, known_tlds: frozenset[str] = DEFAULT_TLDS, field: str = "domain"
) -> str:
    """Return the A-label, lower-case form of a registrable name directly under a known TLD."""
    if not isinstance(raw, str):
        raise InvalidInput(field, f"must be a string, got {type(raw).__name__}")
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidInput(field, "is empty")
    if len(name) > 4 * MAX_NAME_LENGTH:
        raise InvalidInput(field, f"is longer than {MAX_NAME_LENGTH} characters")
    labels = name.split(".")
    for label in labels:
        if not label:
            raise InvalidInput(field, "empty label (two dots in a row, or a leading dot)")
    try:
        ascii_labels = [
            label.lower() if label.isascii() else idna.encode(label, uts46=True).decode("ascii")
            for label in labels
        ]
    except idna.IDNAError as exc:
        raise InvalidInput(field, f"not a valid internationalised name ({exc})") from None
    for label in ascii_labels:
        _check_label(label, field)
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as exc:
                raise InvalidInput(
                    field, f"label {label!r} is not a valid A-label ({exc})"
                ) from None
    ascii_name = ".".join(ascii_labels)
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise InvalidInput(field, f"is longer than {MAX_NAME_LENGTH} characters once encoded")
    tld = ascii_labels[-1]
    if tld not in known_tlds:
        raise InvalidInput(field, f"unknown TLD .{tld} (known: {', '.join(sorted(known_tlds))})")
    if len(ascii_labels) != 2:
        raise InvalidInput(field, f"must be a name directly under .{tld} (label.{tld})")
    return ascii_name


def tld_of(domain: str) -> str:
    """The TLD of an already normalised domain."""
    return domain.rsplit(".", 1)[-1]


def unicode_form(domain: str) -> str:
    """The U-label form of a normalised domain, for display."""
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return domain
