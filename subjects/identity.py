"""Normalising identifiers and parsing subject references (API.md, "Subject references")."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass

import idna
import phonenumbers
from django.conf import settings

from subjects.errors import InvalidIdentifierError, InvalidReferenceError
from subjects.models import Identifier

Kind = Identifier.Kind
KINDS = frozenset(Kind.values)
MAX_IDENTIFIER_LENGTH = 320
_SPACE = re.compile(r"\s")  # any Unicode white space, one C-speed scan


# The plain ASCII e-mail address nearly every reference is: for it, the canonical form is simply the lower-cased
# text, so the bulk check skips the general path below (which gives the same answer for it: tested).
_PLAIN_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_EMAIL: str = Kind.EMAIL.value


def plain_email(value: object) -> str | None:
    """The canonical form of a plain ASCII e-mail address (the lower-cased text), or None for anything else, which
    `normalise` then judges."""
    if type(value) is str and len(value) <= MAX_IDENTIFIER_LENGTH and _PLAIN_EMAIL.fullmatch(value):
        return value.lower()
    return None


def normalise(kind: str, value: object, *, field: str | None = None) -> str:
    """The canonical form of an identifier, the one the blind index is computed over."""
    if kind == _EMAIL and (plain := plain_email(value)) is not None:
        return plain
    where = field or kind
    if kind not in KINDS:
        raise InvalidIdentifierError(f"'{kind}' is not an identifier kind", field=where)
    if not isinstance(value, str):
        raise InvalidIdentifierError("must be a string", field=where)
    text = value.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if not text:
        raise InvalidIdentifierError("must not be empty", field=where)
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifierError(f"longer than {MAX_IDENTIFIER_LENGTH} characters", field=where)
    if kind == Kind.EMAIL:
        return _email(text, where)
    if kind == Kind.PHONE:
        return _phone(text, where)
    if kind == Kind.SOCIAL_HANDLE:
        return text.lower()
    if _SPACE.search(text) is not None:
        raise InvalidIdentifierError("must not contain spaces", field=where)
    return text


def _email(text: str, where: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or _SPACE.search(text) is not None or ("@" in local and '"' not in local):
        raise InvalidIdentifierError("is not an e-mail address", field=where)
    domain = domain.lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise InvalidIdentifierError("has an invalid domain", field=where) from None
    if "." not in domain or domain.startswith(".") or ".." in domain:
        raise InvalidIdentifierError("has an invalid domain", field=where)
    return f"{local.lower()}@{domain}"


def _phone(text: str, where: str) -> str:
    try:
        number = phonenumbers.parse(text, settings.ASSENT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifierError("is not a phone number", field=where) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifierError("is not a valid phone number", field=where)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed subject reference: an id and/or normalised identifiers."""

    subject_id: uuid.UUID | None
    identifiers: tuple[tuple[str, str], ...]  # (kind, normalised value)

    @property
    def email(self) -> str | None:
        return next((value for kind, value in self.identifiers if kind == Kind.EMAIL), None)


def parse_reference(raw: object, *, field: str = "subject") -> Reference:
    # A plain e-mail address alone, nearly every reference of a send or a send job: the general walk's answer, sooner.
    if type(raw) is dict and len(raw) == 1 and (plain := plain_email(raw.get(_EMAIL))) is not None:
        return Reference(None, ((_EMAIL, plain),))
    if not isinstance(raw, dict):
        raise InvalidReferenceError("must be an object with an id or identifiers", field=field)
    if not raw:
        raise InvalidReferenceError("must name an id or at least one identifier", field=field)
    subject_id: uuid.UUID | None = None
    identifiers: list[tuple[str, str]] = []
    for key, value in raw.items():
        if key == "id":
            try:
                subject_id = uuid.UUID(str(value)) if isinstance(value, str) else None
            except ValueError:
                subject_id = None
            if subject_id is None:
                raise InvalidReferenceError("is not a UUID", field=f"{field}.id")
        elif key in KINDS:
            identifiers.append((key, normalise(key, value, field=f"{field}.{key}")))
        else:
            raise InvalidReferenceError(f"'{key}' is not an identifier kind", field=f"{field}.{key}")
    return Reference(subject_id, tuple(identifiers))
