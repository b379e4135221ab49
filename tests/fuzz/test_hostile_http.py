"""Hostile requests at the HTTP level, made by hand: oversized bodies, deep JSON, invalid UTF-8, NUL, lone
surrogates, megabyte identifiers, numbers beyond any float or safe integer, wrong content types, empty bodies. The
API answers each with a 4xx and an RFC 9457 problem body; the portal and the admin with a 4xx page a person can
read. Never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.api import PROBLEM, Api
from tests.fuzz.forms import FORM, assert_readable

TOO_BIG = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
MEGA_EMAIL = "a" * (1024 * 1024) + "@example.de"
REFERENCE = {"email": "anna@example.de"}
# One valid body per JSON endpoint; each hostile case below spoils one of them.
VALID: dict[str, dict[str, Any]] = {
    "/api/v1/consents": {
        "subject": REFERENCE,
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
    },
    "/api/v1/consents/check": {"subject": REFERENCE, "purpose": "newsletter", "channel": "sms"},
    "/api/v1/consents/check-bulk": {"subjects": [REFERENCE], "purpose": "newsletter", "channel": "sms"},
    "/api/v1/records": {
        "source": "pos",
        "external_id": "R-1",
        "category": "contact",
        "identifiers": REFERENCE,
        "occurred_at": "2026-01-10T10:00:00Z",
    },
    "/api/v1/records/batch": {
        "records": [
            {
                "source": "pos",
                "external_id": "R-1",
                "category": "contact",
                "identifiers": REFERENCE,
                "occurred_at": "2026-01-10T10:00:00Z",
            }
        ]
    },
    "/api/v1/requests": {"kind": "access", "subject": REFERENCE, "channel": "callcenter"},
    "/api/v1/sends": {"campaign": "spring", "purpose": "newsletter", "channel": "sms", "recipients": [REFERENCE]},
}
ENDPOINTS = sorted(VALID)


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


def with_email(body: dict[str, Any], email: str) -> dict[str, Any]:
    """The body with its e-mail identifier replaced, wherever the endpoint carries it."""
    text = json.dumps(body).replace('"anna@example.de"', json.dumps(email))
    return json.loads(text)  # type: ignore[no-any-return]


def deep(levels: int) -> bytes:
    return b'{"evidence":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"


# (name, content type, raw body builder taking the endpoint's valid body, expected status)
HOSTILE: list[tuple[str, str, Any, int]] = [
    ("empty body", "application/json", lambda body: b"", 400),
    ("only white space", "application/json", lambda body: b"  \n ", 400),
    ("JSON null", "application/json", lambda body: b"null", 400),
    ("a JSON array", "application/json", lambda body: b"[1, 2]", 400),
    ("a JSON string", "application/json", lambda body: b'"x"', 400),
    ("truncated JSON", "application/json", lambda body: dumps(body)[:-3], 400),
    ("a byte-order mark", "application/json", lambda body: b"\xef\xbb\xbf" + dumps(body), 400),
    ("invalid UTF-8", "application/json", lambda body: dumps(body).replace(b"anna", b"\xff\xfe\xfa"), 400),
    ("a UTF-8 encoded surrogate", "application/json", lambda body: dumps(body).replace(b"anna", b"\xed\xa0\x80"), 400),
    ("an escaped lone surrogate", "application/json", lambda body: dumps(body).replace(b"anna", b"\\ud800"), 400),
    ("an escaped NUL", "application/json", lambda body: dumps(body).replace(b"anna", b"an\\u0000na"), 400),
    ("a NUL in a key", "application/json", lambda body: dumps({**body, "x\x00": 1}), 400),
    ("JSON 100,000 deep", "application/json", lambda body: b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400),
    ("JSON 40 deep", "application/json", lambda body: dumps({**body, "evidence": json.loads(deep(40))}), 400),
    ("1e309", "application/json", lambda body: dumps(body)[:-1] + b',"n":1e309}', 400),
    (
        "-1e309 in evidence",
        "application/json",
        lambda body: dumps({**body, "evidence": {}})[:-3] + b'{"n":-1e309}}',
        400,
    ),
    ("10**400", "application/json", lambda body: dumps(body)[:-1] + b',"n":' + str(10**400).encode() + b"}", 400),
    ("2**64 in evidence", "application/json", lambda body: dumps({**body, "evidence": {"n": 2**64}}), 400),
    ("NaN", "application/json", lambda body: dumps(body)[:-1] + b',"n":NaN}', 400),
    ("a megabyte e-mail", "application/json", lambda body: dumps(with_email(body, MEGA_EMAIL)), 400),
    ("an e-mail of NULs", "application/json", lambda body: dumps(with_email(body, "\x00" * 64)), 400),
    (
        "a body over the upload limit",
        "application/json",
        lambda body: dumps(body)[:-1] + b',"pad":"' + b"x" * TOO_BIG + b'"}',
        413,
    ),
    ("text/plain", "text/plain", lambda body: dumps(body), 415),
    ("a form", FORM, lambda body: b"subject=anna%40example.de&purpose=newsletter", 415),
    ("multipart", "multipart/form-data; boundary=xyz", lambda body: b"--xyz\r\n\r\n--xyz--\r\n", 415),
    ("XML", "application/xml", lambda body: b"<consent/>", 415),
    ("no content type", "", lambda body: dumps(body), 415),
    ("another JSON type", "application/merge-patch+json", lambda body: dumps(body), 415),
    ("a content type without a subtype", "json", lambda body: dumps(body), 415),
]


@pytest.fixture
def caller(catalogue: dict[str, Any], make_client: Any) -> Api:
    return Api(make_client())  # every scope: only the input can be at fault


def assert_problem(response: Any, status: int, where: str) -> dict[str, Any]:
    assert response.status_code == status, f"{where}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"] == PROBLEM, f"{where}: {response['Content-Type']}"
    body: dict[str, Any] = json.loads(response.content)
    assert body["status"] == status, where
    assert body["title"], where
    assert body["detail"], where
    assert body["code"], where
    return body


@pytest.mark.parametrize(("name", "content_type", "build", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_the_api_answers_hostile_bodies_with_a_problem(
    caller: Api, name: str, content_type: str, build: Any, status: int
) -> None:
    for endpoint in ENDPOINTS:
        raw = build(VALID[endpoint])
        response = caller.http.generic("POST", endpoint, raw, content_type=content_type, **caller._headers(None))
        if (name, endpoint) in ITEM_LEVEL:
            # A batch reports an invalid item in its results and still applies the rest (API.md).
            assert response.status_code == 200, response.content[:300]
            assert response.json()["results"][0]["status"] == "invalid"
            continue
        assert_problem(response, status, f"{name} to {endpoint}")


ITEM_LEVEL = {("a megabyte e-mail", "/api/v1/records/batch")}


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json ; charset=UTF-8"]
)
def test_the_api_reads_every_spelling_of_json_alike(caller: Api, content_type: str) -> None:
    for endpoint in ENDPOINTS:
        raw = dumps(VALID[endpoint])
        response = caller.http.generic("POST", endpoint, raw, content_type=content_type, **caller._headers(None))
        assert response.status_code < 300, (content_type, endpoint, response.content[:300])


SUBJECT = "/api/v1/subjects/00000000-0000-0000-0000-000000000000"
HOSTILE_GETS = [
    (f"{SUBJECT}/profile?purpose=" + "n" * 1_000_000, 400),  # the purpose is checked before the subject
    (f"{SUBJECT}/profile?purpose=news%00letter", 400),
    (f"{SUBJECT}/profile?purpose=%ff%fe", 400),  # undecodable bytes arrive as U+FFFD: an unknown purpose
    (f"{SUBJECT}/profile?purpose=%ed%a0%80", 400),
    (f"{SUBJECT}/consents?x=" + "%00" * 10, 400),
    ("/api/v1/requests/" + "a" * 1_000_000, 404),
    ("/api/v1/requests/%00", 400),
    ("/api/v1/requests/%ed%a0%80", 404),
    ("/api/v1/merge-proposals/" + "9" * 100_000, 404),
    ("/api/v1/subjects/" + "1" * 400 + "/consents", 404),
    ("/api/v1/requests/00000000-0000-0000-0000-000000000000/export?token=" + "t" * 1_000_000, 404),
]


@pytest.mark.parametrize(("path", "status"), HOSTILE_GETS, ids=[p[:60] for p, _ in HOSTILE_GETS])
def test_the_api_answers_hostile_paths_and_queries_with_a_problem(caller: Api, path: str, status: int) -> None:
    assert_problem(caller.get(path), status, path[:80])


@pytest.mark.parametrize(
    "authorization",
    ["Bearer " + "k" * 1_000_000, "Bearer \x00", "Bearer caf\xe9", "Basic YTpi", "Bearer a b", "bearer"],
    ids=["a megabyte key", "a NUL key", "a Latin-1 key", "Basic", "three words", "no key"],
)
def test_the_api_answers_hostile_authorization_with_a_401_problem(catalogue: Any, authorization: str) -> None:
    response = Client().post(
        "/api/v1/consents/check",
        dumps(VALID["/api/v1/consents/check"]),
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
    )
    assert_problem(response, 401, authorization[:20])


def test_an_idempotency_key_of_a_megabyte_is_a_400_problem(caller: Api) -> None:
    response = caller.post("/api/v1/consents", VALID["/api/v1/consents"], headers={"Idempotency-Key": "k" * 1_000_000})
    assert_problem(response, 400, "Idempotency-Key")


# --- portal and admin: a readable 4xx page --------------------------------------------------------------------------
PAGES = ["/portal/", "/admin/login/"]
HOSTILE_FORMS: list[tuple[str, str, bytes]] = [
    ("a body over the upload limit", FORM, b"email=" + b"a" * TOO_BIG),
    (
        "more fields than allowed",
        FORM,
        b"&".join(b"f%d=1" % i for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)),
    ),
    ("invalid UTF-8", FORM, b"email=%ff%fe%fa&username=%c3&password=%ed%a0%80"),
    ("raw invalid UTF-8", FORM, b"email=\xff\xfe&username=\xc3"),
    ("NUL", FORM, b"email=a%00b%40example.de&username=%00&password=%00"),
    ("a megabyte e-mail", FORM, b"email=" + b"a" * 1_000_000 + b"%40example.de&username=" + b"a" * 1_000_000),
    # Longer than any account's name, with a password: it reached the lockout's 255-character column (a 500).
    ("a 300-character username", FORM, b"username=" + b"a" * 300 + b"&password=secret&otp_token=123456"),
    ("JSON", "application/json", b'{"email": "anna@example.de"}'),
    ("deep JSON", "application/json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("multipart without parts", "multipart/form-data; boundary=xyz", b"--xyz--\r\n"),
    ("broken multipart", "multipart/form-data", b"--\r\n\r\n"),
    ("empty", FORM, b""),
]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("name", "content_type", "raw"), HOSTILE_FORMS, ids=[h[0] for h in HOSTILE_FORMS])
def test_portal_and_admin_answer_hostile_posts_with_a_readable_page(
    catalogue: Any, page: str, name: str, content_type: str, raw: bytes
) -> None:
    response = Client().generic("POST", page, raw, content_type=content_type)
    assert_readable(response, f"{name} to {page}")
    if name == "a body over the upload limit":
        assert response.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/portal/signin/" + "a" * 100_000,
        "/portal/signin/%00",
        "/portal/?next=%00",
        "/admin/login/?next=" + "%ff" * 1000,
        "/u/" + "x" * 100_000,
        "/confirm/%ed%a0%80",
        "/admin/%00/",
    ],
)
def test_portal_and_admin_answer_hostile_paths_with_a_readable_page(catalogue: Any, path: str) -> None:
    response = Client().get(path)
    assert_readable(response, path[:80])
