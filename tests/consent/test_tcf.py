"""IAB TCF v2.2 (issue 16): a CMP's TC string, decoded by consent.tcf and recorded on the catalogue purposes that name
TCF purposes, one event each with the string as evidence; a string that cannot be read is a 400 naming why."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.ledger.chain import event_evidence
from consent.models import ConsentEvent
from consent.tcf import TcStringError, tc_string_decode
from subjects.keys import data_key
from subjects.models import Subject
from tests.api import Api, assert_problem
from tests.catalogue import gpc_catalogue
from tests.factories import apply_catalogue

# Decoded by the IAB Tech Lab's reference library (com.iabtcf.decoder.TCString), as printed beside it in a public test
# (Ketch's Android SDK).
REFERENCE = "CPhBZtcPhBZtcACABAENCACgAIAAAAAAAAAAH2QAYH0AfYB9kAGB9YH2AAAA.YAAAAAAAAAAA"


def test_the_reference_library_s_string_decodes_to_what_it_printed() -> None:
    decoded = tc_string_decode(REFERENCE)

    assert (decoded.version, decoded.cmp_id, decoded.cmp_version, decoded.consent_screen) == (2, 2, 1, 0)
    assert decoded.created == decoded.last_updated == datetime(2022, 10, 17, 13, 44, 54, tzinfo=UTC)
    assert (decoded.consent_language, decoded.vendor_list_version, decoded.policy_version) == ("EN", 128, 2)
    assert (decoded.is_service_specific, decoded.use_non_standard_texts, decoded.purpose_one_treatment) == (
        True,
        False,
        False,
    )
    assert decoded.special_feature_opt_ins == frozenset()
    assert decoded.purposes_consent == {1}
    assert decoded.purposes_legitimate_interest == frozenset()
    assert decoded.publisher_cc == "AA"
    assert decoded.vendor_consents == {1000, 1001, 1002, 1003, 1004}
    assert decoded.vendor_legitimate_interests == {1003, 1004}


# The IAB Tech Lab's own test strings for its reference decoder (iabtcf-java, TCStringV2Test), with the values its
# tests assert.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA",
            {
                "created": datetime(2020, 1, 26, 17, 1, tzinfo=UTC),
                "last_updated": datetime(2021, 2, 2, 17, 1, tzinfo=UTC),
                "cmp_id": 675,
                "cmp_version": 2,
                "consent_screen": 1,
                "vendor_list_version": 15,
                "policy_version": 2,
                "consent_language": "EN",
                "publisher_cc": "AA",
                "is_service_specific": False,
                "purpose_one_treatment": True,
                "use_non_standard_texts": False,
                "special_feature_opt_ins": {1},
                "purposes_consent": {2, 10},
                "purposes_legitimate_interest": {2, 9},
            },
        ),
        (
            "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA",
            {
                "purposes_consent": {3, 4, 5, 6, 7, 8, 9},
                "vendor_consents": {23, 37, 47, 48, 53, 65, 98},
                "vendor_legitimate_interests": {37, 47, 48, 53, 65, 98, 129},
            },
        ),
        (  # all four segments, the last with its base64 padding
            "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA."
            "IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg=",
            {"purposes_consent": {3, 4, 5, 6, 7, 8, 9}},
        ),
        ("COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA", {"vendor_legitimate_interests": {128}}),
        (
            "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAA"
            "AAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw",
            {"vendor_consents": {702, 703}},
        ),
        (
            "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAg"
            "AQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw",
            {"vendor_consents": {703}},
        ),
    ],
)
def test_the_iab_s_own_test_strings_decode_as_its_reference_decoder_says(text: str, expected: dict[str, Any]) -> None:
    decoded = tc_string_decode(text)
    assert decoded.version == 2
    assert {name: getattr(decoded, name) for name in expected} == expected


def test_the_iab_s_purposes_test_string_has_purposes_1_and_2() -> None:
    assert {1, 2} <= tc_string_decode("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA").purposes_consent


def core_segment(
    *, policy_version: int = 4, purposes: set[int] = frozenset(), vendors: tuple[int, ...] = (), version: int = 2
) -> str:
    """A TC string's core segment written bit by bit after the IAB's format (v2.2 is TCF policy version 4)."""
    fields = [
        (version, 6),
        (17_000_000_000, 36),  # Created, deciseconds: 2023-11-14T22:13:20Z
        (17_000_000_000, 36),
        (300, 12),  # CmpId
        (7, 12),
        (1, 6),
        (ord("D") - 65, 6),
        (ord("E") - 65, 6),
        (48, 12),  # VendorListVersion
        (policy_version, 6),
        (0, 1),
        (0, 1),
        (0, 12),
        (sum(1 << (24 - p) for p in purposes), 24),  # PurposesConsent, purpose 1 is the first bit
        (0, 24),
        (0, 1),
        (ord("D") - 65, 6),
        (ord("E") - 65, 6),
    ]
    # Vendor consents range-encoded, no legitimate interests, no publisher restrictions
    fields += [(max(vendors, default=0), 16), (1, 1), (len(vendors), 12)]
    for vendor in vendors:
        fields += [(0, 1), (vendor, 16)]
    fields += [(0, 16), (0, 1), (0, 12)]
    bits = "".join(format(value, f"0{width}b") for value, width in fields)
    bits += "0" * (-len(bits) % 8)
    return base64.urlsafe_b64encode(int(bits, 2).to_bytes(len(bits) // 8, "big")).decode().rstrip("=")


def test_a_v2_2_string_decodes_its_purposes_and_range_encoded_vendors() -> None:
    decoded = tc_string_decode(core_segment(purposes={1, 3, 4}, vendors=(8, 755)))
    assert (decoded.policy_version, decoded.cmp_id, decoded.consent_language, decoded.publisher_cc) == (
        4,
        300,
        "DE",
        "DE",
    )
    assert decoded.purposes_consent == {1, 3, 4}
    assert decoded.vendor_consents == {8, 755}
    assert decoded.created == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is required and must be a non-empty string"),
        ("CPh BZ", "is not base64url"),
        ("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "is of version 1; only version 2 (TCF v2.x) is read"),
        (REFERENCE[:20], "the core segment ends inside"),
    ],
)
def test_a_string_that_cannot_be_read_names_why(text: str, problem: str) -> None:
    with pytest.raises(TcStringError) as caught:
        tc_string_decode(text)
    assert problem in caught.value.detail
    assert caught.value.field == "tc_string"


@pytest.fixture
def api(db: None, make_client: Callable[..., str]) -> Api:
    # "targeted-ads" (consent, on the website) names TCF purposes 1, 3 and 4; "phone-offers" names none
    document = gpc_catalogue()
    next(p for p in document["purposes"] if p["key"] == "targeted-ads")["tcf_purposes"] = [1, 3, 4]
    apply_catalogue(document)
    return Api(make_client())


def write(api: Api, tc_string: str, **fields: Any) -> Any:
    body = {"subject": {"email": "anna.tcf@example.de"}, "tc_string": tc_string, "source": "webshop-cmp", **fields}
    return api.post("/api/v1/consents", body)


def test_a_tc_string_with_every_mapped_purpose_grants_the_catalogue_purpose_with_the_string_as_evidence(
    api: Api,
) -> None:
    text = core_segment(purposes={1, 2, 3, 4, 7})
    response = write(api, text)

    assert response.status_code == 201, response.content
    body = response.json()
    assert [(e["purpose"], e["channel"], e["state"]) for e in body["events"]] == [("targeted-ads", "web", "granted")]
    assert body["tcf"] == {"cmp_id": 300, "policy_version": 4, "purposes_consent": [1, 2, 3, 4, 7]}
    event = ConsentEvent.objects.get(pk=body["events"][0]["event"])
    subject = Subject.objects.get(pk=body["subject"])
    evidence = event_evidence(event, data_key(subject))
    assert evidence["tc_string"] == text
    assert evidence["tcf"]["purposes_consent"] == [1, 2, 3, 4, 7]
    check = {"subject": {"email": "anna.tcf@example.de"}, "purpose": "targeted-ads", "channel": "web"}
    assert api.post("/api/v1/consents/check", check).json()["reason"] == "granted"

    # A later string without purpose 4 withdraws it
    again = write(api, core_segment(purposes={1, 3}))
    assert [e["state"] for e in again.json()["events"]] == ["withdrawn"]
    assert api.post("/api/v1/consents/check", check).json()["reason"] == "withdrawn"


def test_a_tc_string_write_refuses_purpose_and_channel_and_unreadable_strings(api: Api) -> None:
    assert_problem(write(api, core_segment(), purpose="targeted-ads"), 400, "invalid", "purpose")
    assert_problem(write(api, "not a tc string!"), 400, "tc_string_invalid", "tc_string")
    assert_problem(write(api, REFERENCE[:20]), 400, "tc_string_invalid", "tc_string")
    assert not ConsentEvent.objects.exists()
