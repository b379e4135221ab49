"""HTTP connectors (API.md, Connectors): the CRM is a real HTTP server on 127.0.0.1 that checks every request's
signature with `standardwebhooks`. Access and erasure parts are POSTed to it; its answers land in the export (a
folder of its own) and the erasure report (what it kept and why); a 202 waits for its signed callback; a callback
with a bad signature is refused; a CRM that keeps failing makes the part fail, visibly, with its last answer."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from standardwebhooks.webhooks import Webhook

from tests.api import Api
from tests.catalogue import rights_catalogue as rights_catalogue_document
from tests.factories import apply_catalogue, ingest
from tests.rights.helpers import drain

REQUESTS = "/api/v1/requests"
SECRET_ENV = "ASSENT_TEST_CRM_SECRET"
pytestmark = pytest.mark.django_db


@dataclass
class Crm:
    """The connected system: answers in turn (the last repeats), and what it was sent, each signature checked."""

    secret: str
    url: str = ""
    answers: list[tuple[int, dict[str, Any] | str]] = field(default_factory=lambda: [(200, {"data": {}})])
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self.lock:
            payload = Webhook(self.secret).verify(body, headers)  # raises on a bad signature
            self.received.append(payload)
            status, answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return status, (answer if isinstance(answer, str) else json.dumps(answer)).encode()


@pytest.fixture
def crm(rights_catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Crm]:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(SECRET_ENV, secret)
    settings.ASSENT_CONNECTOR_BACKOFF_SCALE = 0.0  # retries at once: the backoff is not what is tested here
    settings.ASSENT_CONNECTOR_ATTEMPTS = 3
    system = Crm(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                status, answer = system.handle({k.lower(): v for k, v in self.headers.items()}, body)
            except Exception:  # noqa: BLE001 - an unsigned or wrongly signed request is refused
                status, answer = 401, b"bad signature"
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    system.url = f"http://127.0.0.1:{server.server_address[1]}/assent"
    document = rights_catalogue_document()
    document["sources"].append(
        {
            "key": "crm",
            "name": "CRM",
            "system_of_record": False,
            "categories": {"calls": {"delete_after_days": 365}},
            "connector": {"type": "http", "url": system.url, "secret_env": SECRET_ENV},
        }
    )
    apply_catalogue(document)
    yield system
    server.shutdown()
    server.server_close()


def open_request(api: Api, kind: str, email: str) -> str:
    body = {"kind": kind, "subject": {"email": email}, "channel": "callcenter", "verified": True}
    response = api.post(REQUESTS, body)
    assert response.status_code == 202, response.content
    request_id: str = response.json()["id"]
    if kind == "erasure":
        assert api.post(f"{REQUESTS}/{request_id}/approve", {}).status_code == 202
    return request_id


def export_of(api: Api, request_id: str) -> zipfile.ZipFile:
    url = urlsplit(api.get(f"{REQUESTS}/{request_id}").json()["result"]["export_url"])
    response = api.get(f"{url.path}?{url.query}")
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def signed_callback(secret: str, request_id: str, part: str, body: dict[str, Any]) -> Any:
    raw = json.dumps(body)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_callback_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_callback_1", now, raw),
    }
    return Client().post(
        f"{REQUESTS}/{request_id}/parts/{part}/result", data=raw, content_type="application/json", headers=headers
    )


def person(tag: str) -> str:
    email = f"{tag}@example.de"
    ingest("crm", f"CRM-{tag}", {"email": email}, category="calls")
    ingest("shop", f"S-{tag}", {"email": email, "customer_number": f"C-{tag}"}, category="orders")
    return email


def test_an_access_export_holds_the_systems_data_in_its_own_folder(crm: Crm, rapi: Api) -> None:
    email = person("conn1")
    crm.answers = [(200, {"data": {"tickets": [{"id": "T-7", "subject": "Delivery late"}]}})]
    request_id = open_request(rapi, "access", email)
    assert drain(request_id).status == "completed"

    (asked,) = crm.received  # signed (the CRM verified it), and about this person only
    assert asked["kind"] == "access"
    assert asked["request"] == request_id
    assert asked["identifiers"] == {"customer_number": ["C-conn1"], "email": [email]}
    assert asked["records"] == [{"external_id": "CRM-conn1"}]
    archive = export_of(rapi, request_id)
    assert json.loads(archive.read("systems/crm/data.json")) == {"tickets": [{"id": "T-7", "subject": "Delivery late"}]}


def test_an_erasure_report_holds_what_the_system_kept_and_why(crm: Crm, rapi: Api) -> None:
    email = person("conn2")
    crm.answers = [
        (200, {"erased": ["tickets", "notes"], "kept": [{"what": "invoices", "why": "§147 AO", "until": "2034-12-31"}]})
    ]
    request_id = open_request(rapi, "erasure", email)
    assert drain(request_id).status == "completed"

    assert crm.received[0]["kind"] == "erasure"
    assert crm.received[0]["identifiers"]["email"] == [email]  # taken before the person's identifiers went
    result = rapi.get(f"{REQUESTS}/{request_id}").json()["result"]
    (system,) = result["systems"]
    assert (system["source"], system["erased"]) == ("crm", ["tickets", "notes"])
    assert system["kept"] == [{"what": "invoices", "why": "§147 AO", "until": "2034-12-31"}]
    assert {
        "source": "crm",
        "category": "invoices",
        "where": "CRM (connected system)",
        "why": "§147 AO",
        "until": "2034-12-31",
        "instruction": "kept by the connected system, as it reported",
    } in result["kept"]
    # Art. 19: the CRM is a recipient told by its connector, with when it was told and when it answered.
    (told,) = [n for n in result["notices"]["told"] if n["recipient"] == "CRM"]
    assert (told["event"], told["status"]) == ("erasure (connector)", "done")
    assert told["told_at"] is not None
    assert told["acknowledged_at"] is not None


def test_a_202_waits_for_the_signed_callback_which_completes_the_part(crm: Crm, rapi: Api) -> None:
    email = person("conn3")
    crm.answers = [(202, "")]
    request_id = open_request(rapi, "access", email)
    assert drain(request_id).status == "processing"  # the CRM is gathering
    parts = {p["name"]: p["status"] for p in rapi.get(f"{REQUESTS}/{request_id}").json()["parts"]}
    assert parts["connector:crm"] == "running"
    assert parts["finish"] == "pending"

    response = signed_callback(crm.secret, request_id, "connector:crm", {"data": {"visits": 3}})
    assert response.status_code == 202, response.content
    assert drain(request_id).status == "completed"
    assert len(crm.received) == 1  # not asked again
    assert json.loads(export_of(rapi, request_id).read("systems/crm/data.json")) == {"visits": 3}


def test_a_callback_with_a_bad_signature_is_refused(crm: Crm, rapi: Api) -> None:
    email = person("conn4")
    crm.answers = [(202, "")]
    request_id = open_request(rapi, "access", email)
    drain(request_id)
    forged = "whsec_" + base64.b64encode(b"x" * 32).decode()
    response = signed_callback(forged, request_id, "connector:crm", {"data": {"visits": 99}})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_signature"
    unsigned = Client().post(
        f"{REQUESTS}/{request_id}/parts/connector:crm/result", data="{}", content_type="application/json"
    )
    assert unsigned.status_code == 401
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "processing"


def test_a_failing_system_fails_the_part_visibly_after_its_retries(crm: Crm, rapi: Api) -> None:
    email = person("conn5")
    crm.answers = [(503, "maintenance until 6 pm")]
    request_id = open_request(rapi, "erasure", email)
    for _ in range(3):
        drain(request_id)
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "failed"
    assert len(crm.received) == 3  # ASSENT_CONNECTOR_ATTEMPTS
    (part,) = [p for p in body["parts"] if p["name"] == "connector:crm"]
    assert part["status"] == "failed"
    assert "HTTP 503: maintenance until 6 pm" in part["error"]
    assert "after 3 attempts" in part["error"]


def test_the_catalogue_refuses_a_connector_it_cannot_use(rights_catalogue: dict[str, Any]) -> None:
    from consent.catalogue.validate import catalogue_validate

    document = rights_catalogue_document()
    document["sources"].append(
        {
            "key": "crm",
            "name": "CRM",
            "system_of_record": False,
            "categories": {},
            "connector": {"type": "http", "url": "http://crm.example.com/assent", "secret_env": "lower-case"},
        }
    )
    problems = catalogue_validate(document)
    assert any("connector.url" in p for p in problems), problems
    assert any("connector.secret_env" in p for p in problems), problems
