"""IAB Transparency and Consent Framework v2.2: decoding a TC string (the consent a CMP banner collected).

A decoder of our own: the Python packages on PyPI that read TC strings are unmaintained (iab-tcf 0.2.2, 2021, needs a
fork of bitarray) and none is tested on v2.2. The format is the IAB's "Consent string and vendor list formats v2"
(unchanged in bit layout by v2.2, which moved to TCF policy version 4): base64url segments joined by ".", the first the
core segment, then optional segments whose first three bits name them (1 disclosed vendors, 3 publisher TC).

The core segment is read whole, vendor sections and publisher restrictions included, so that a truncated or
garbled string is refused (TcStringError names the first field that does not fit) instead of half-read."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from config.errors import InvalidInputError

MAX_LENGTH = 20_000  # a string with every one of 65,535 vendors as a bit field is about 11,000 characters
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+=*$")  # base64url; some CMPs keep the padding
_DECISECONDS = 10


class TcStringError(InvalidInputError):
    code = "tc_string_invalid"
    title = "The TC string cannot be read"


@dataclass(frozen=True, slots=True)
class TcString:
    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]

    def evidence(self) -> dict[str, object]:
        """What the ledger keeps of the decoded string beside the string itself (which stays the proof)."""
        return {
            "cmp_id": self.cmp_id,
            "cmp_version": self.cmp_version,
            "policy_version": self.policy_version,
            "vendor_list_version": self.vendor_list_version,
            "consent_language": self.consent_language,
            "created": self.created.isoformat(),
            "last_updated": self.last_updated.isoformat(),
            "purposes_consent": sorted(self.purposes_consent),
        }


class _Bits:
    """A cursor over the bits of one segment, most significant bit first."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._length = len(data) * 8
        self.position = 0

    def read(self, width: int, field: str) -> int:
        if self.position + width > self._length:
            raise TcStringError(f"the core segment ends inside {field} (bit {self.position})", field="tc_string")
        shift = self._length - self.position - width
        self.position += width
        return (self._value >> shift) & ((1 << width) - 1)

    def flag(self, field: str) -> bool:
        return self.read(1, field) == 1

    def set_of(self, width: int, field: str) -> frozenset[int]:
        """A bit field: bit i (from 1) set means id i is in the set."""
        bits = self.read(width, field) if width else 0
        return frozenset(i + 1 for i in range(width) if bits >> (width - 1 - i) & 1)

    def letters(self, count: int, field: str) -> str:
        return "".join(chr(ord("A") + self.read(6, field)) for _ in range(count))


def _segment_bytes(text: str) -> bytes:
    if not _SEGMENT.match(text):
        raise TcStringError("is not base64url (A-Z, a-z, 0-9, '-', '_'), segments joined by '.'", field="tc_string")
    try:
        bare = text.rstrip("=")
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        raise TcStringError("a segment is not valid base64url", field="tc_string") from None


def _vendor_section(bits: _Bits, name: str) -> frozenset[int]:
    maximum = bits.read(16, f"{name} MaxVendorId")
    if not bits.flag(f"{name} IsRangeEncoding"):
        return bits.set_of(maximum, f"{name} BitField")
    vendors: set[int] = set()
    for _ in range(bits.read(12, f"{name} NumEntries")):
        is_range = bits.flag(f"{name} IsARange")
        start = bits.read(16, f"{name} StartOrOnlyVendorId")
        end = bits.read(16, f"{name} EndVendorId") if is_range else start
        if not 1 <= start <= end <= maximum:
            raise TcStringError(f"{name}: vendor range {start}-{end} outside 1-{maximum}", field="tc_string")
        vendors.update(range(start, end + 1))
    return frozenset(vendors)


def _moment(deciseconds: int) -> datetime:
    return datetime.fromtimestamp(deciseconds / _DECISECONDS, tz=UTC)


def tc_string_decode(text: object) -> TcString:
    """The core segment of a TC string v2; TcStringError (400, field `tc_string`) naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise TcStringError("is required and must be a non-empty string", field="tc_string")
    if len(text) > MAX_LENGTH:
        raise TcStringError(f"is longer than {MAX_LENGTH} characters", field="tc_string")
    bits = _Bits(_segment_bytes(text.strip().split(".")[0]))
    version = bits.read(6, "Version")
    if version != 2:
        raise TcStringError(f"is of version {version}; only version 2 (TCF v2.x) is read", field="tc_string")
    created, last_updated = _moment(bits.read(36, "Created")), _moment(bits.read(36, "LastUpdated"))
    cmp_id, cmp_version = bits.read(12, "CmpId"), bits.read(12, "CmpVersion")
    consent_screen = bits.read(6, "ConsentScreen")
    language = bits.letters(2, "ConsentLanguage")
    vendor_list_version = bits.read(12, "VendorListVersion")
    policy_version = bits.read(6, "TcfPolicyVersion")
    service_specific, non_standard = bits.flag("IsServiceSpecific"), bits.flag("UseNonStandardTexts")
    special_features = bits.set_of(12, "SpecialFeatureOptIns")
    purposes_consent = bits.set_of(24, "PurposesConsent")
    purposes_li = bits.set_of(24, "PurposesLITransparency")
    purpose_one_treatment = bits.flag("PurposeOneTreatment")
    publisher_cc = bits.letters(2, "PublisherCC")
    vendor_consents = _vendor_section(bits, "Vendor Consent Section")
    vendor_li = _vendor_section(bits, "Vendor Legitimate Interest Section")
    for _ in range(bits.read(12, "NumPubRestrictions")):
        bits.read(6, "PurposeId")
        bits.read(2, "RestrictionType")
        _vendor_section_ranges(bits)
    if cmp_id == 0:
        raise TcStringError("names CMP 0: no registered CMP made it", field="tc_string")
    if not language.isalpha() or not publisher_cc.isalpha():
        raise TcStringError("has a language or country code that is not two letters", field="tc_string")
    return TcString(
        version=version,
        created=created,
        last_updated=last_updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=consent_screen,
        consent_language=language,
        vendor_list_version=vendor_list_version,
        policy_version=policy_version,
        is_service_specific=service_specific,
        use_non_standard_texts=non_standard,
        special_feature_opt_ins=special_features,
        purposes_consent=purposes_consent,
        purposes_legitimate_interest=purposes_li,
        purpose_one_treatment=purpose_one_treatment,
        publisher_cc=publisher_cc,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_li,
    )


def _vendor_section_ranges(bits: _Bits) -> None:
    """A publisher restriction's vendors: NumEntries ranges, always range-encoded."""
    for _ in range(bits.read(12, "Publisher restriction NumEntries")):
        is_range = bits.flag("Publisher restriction IsARange")
        bits.read(16, "Publisher restriction StartOrOnlyVendorId")
        if is_range:
            bits.read(16, "Publisher restriction EndVendorId")
