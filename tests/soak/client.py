"""One soak client: a process of its own (multiprocessing, spawn) that plays another service against the API over
HTTP until its deadline, and writes down everything it was told, one JSON line per call, for the audit
(tests/soak/audit.py). No Django here: a client knows only the API contract (API.md).

What a line holds: `op` (the kind of call), `status` (the HTTP status, or `transport:<error>` when no answer came),
`sent` (what the audit compares the ledger with) and `got` (the answer's ids and states)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.soak.population import GENERATION_SECONDS, HOT, PEOPLE, identifiers, some_identifiers

NOTICE = "2026-01"
NEWSLETTER_CHANNELS = ("sms", "push", "email")  # email needs double opt-in in the test catalogue
CHECKS = (("newsletter", "email"), ("newsletter", "sms"), ("offers", "post"), ("offers", "email"))
CHECKS += (("order-updates", "sms"),)


@dataclass(frozen=True, slots=True)
class ClientPlan:
    index: int
    base: str
    key: str
    started_at: float  # wall clock shared by every client: the generation of people is the same for all
    seconds: float
    journal: str  # path of the JSON-lines file
    seed: int


@dataclass
class Client:
    plan: ClientPlan
    http: httpx.Client
    rng: random.Random
    out: Any
    known: dict[tuple[int, int], str] = field(default_factory=dict)  # (person, generation) -> a subject id told
    records: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # external ids per person
    requests: list[str] = field(default_factory=list)  # rights requests opened
    restrictions: list[str] = field(default_factory=list)
    erasures: list[str] = field(default_factory=list)  # awaiting approval
    counter: int = 0

    # --- the people ---------------------------------------------------------------------------------------
    def person(self) -> tuple[int, int]:
        generation = int((time.time() - self.plan.started_at) // GENERATION_SECONDS)
        if generation > 0 and self.rng.random() < 0.2:
            generation -= 1  # the previous generation is still met now and then
        person = self.rng.randrange(HOT) if self.rng.random() < 0.5 else self.rng.randrange(PEOPLE)
        return person, generation

    def reference(self, person: int, generation: int, *, need: str | None = None) -> dict[str, str]:
        """Identifiers the touchpoint knows, or sometimes the subject id it was told before (it may have been
        absorbed by a merge since: API.md says it still acts on the survivor)."""
        known = self.known.get((person, generation))
        if known is not None and self.rng.random() < 0.25:
            ref = {"id": known}
            if need is not None:
                ref[need] = identifiers(person, generation)[need]
            return ref
        return some_identifiers(self.rng, person, generation, need=need)

    # --- the HTTP call and its journal line ------------------------------------------------------------------
    def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        sent: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int | str, Any]:
        start = time.monotonic()
        try:
            response = self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            status: int | str = f"transport:{type(error).__name__}"
            answer: Any = None
        else:
            status = response.status_code
            try:
                answer = response.json()
            except ValueError:
                answer = None
        line = {"op": op, "status": status, "ms": round((time.monotonic() - start) * 1000, 1), "sent": sent}
        if isinstance(status, int) and status >= 500:
            line["body"] = answer if answer is not None else "(not JSON)"
        self.out.write(json.dumps({**line, "got": _ids_of(answer)}) + "\n")
        return status, answer

    def source(self) -> str:
        return f"soak-{self.plan.index}"

    # --- consent writes ------------------------------------------------------------------------------------
    def consent_write(self, op: str, person: int, generation: int, body: dict[str, Any]) -> None:
        """POST /consents; a third carry an Idempotency-Key, and some of those are replayed at once: the replay
        must answer the first status and body, and record nothing new."""
        sent = {k: body.get(k) for k in ("purpose", "channel", "action", "source")}
        sent["identifiers"] = {k: v for k, v in body["subject"].items() if k != "id"}  # the audit's suppression check
        headers = None
        if self.rng.random() < 0.3:
            headers = {"Idempotency-Key": f"soak-{self.plan.index}-{uuid.uuid4()}"}
        status, answer = self.call(op, "POST", "/api/v1/consents", body, sent=sent, headers=headers)
        if status == 201 and isinstance(answer, dict):
            self.known[(person, generation)] = answer["subject"]
        if headers is not None and isinstance(status, int) and status < 500 and self.rng.random() < 0.3:
            self.call(
                "replay", "POST", "/api/v1/consents", body, sent={**sent, "first": [status, answer]}, headers=headers
            )

    def grant(self) -> None:
        person, generation = self.person()
        channel = self.rng.choice(NEWSLETTER_CHANNELS)
        ref = self.reference(person, generation, need="email" if channel == "email" else None)
        body = {"subject": ref, "purpose": "newsletter", "channel": channel, "action": "grant"}
        self.consent_write("grant", person, generation, {**body, "notice_version": NOTICE, "source": self.source()})

    def confirm(self) -> None:
        """The client's own double opt-in form: a confirm with its evidence."""
        person, generation = self.person()
        evidence = {"confirmed_at": datetime.now(UTC).isoformat(), "method": "soak-form", "form": "soak"}
        body = {
            "subject": {"email": identifiers(person, generation)["email"]},
            "purpose": "newsletter",
            "channel": "email",
            "action": "confirm",
            "notice_version": NOTICE,
            "source": self.source(),
            "evidence": evidence,
        }
        self.consent_write("confirm", person, generation, body)

    def withdraw(self) -> None:
        person, generation = self.person()
        body = {
            "subject": self.reference(person, generation),
            "purpose": "newsletter",
            "channel": self.rng.choice(NEWSLETTER_CHANNELS),
            "action": "withdraw",
            "source": self.source(),
        }
        self.consent_write("withdraw", person, generation, body)

    def object(self) -> None:
        """An objection to the legitimate-interest offers, on one channel or (no channel) on all of them."""
        person, generation = self.person()
        body: dict[str, Any] = {
            "subject": self.reference(person, generation),
            "purpose": "offers",
            "action": "object",
            "source": self.source(),
        }
        if self.rng.random() < 0.5:
            body["channel"] = self.rng.choice(("post", "email"))
        self.consent_write("object", person, generation, body)

    # --- reads ---------------------------------------------------------------------------------------------
    def check(self) -> None:
        person, generation = self.person()
        purpose, channel = self.rng.choice(CHECKS)
        body = {"subject": self.reference(person, generation), "purpose": purpose, "channel": channel}
        self.call("check", "POST", "/api/v1/consents/check", body)

    def check_bulk(self) -> None:
        _, generation = self.person()
        purpose, channel = self.rng.choice(CHECKS)
        subjects = [self.reference(person, generation) for person in range(PEOPLE)]
        body = {"purpose": purpose, "channel": channel, "subjects": subjects}
        self.call("check-bulk", "POST", "/api/v1/consents/check-bulk", body)

    def history(self) -> None:
        person, generation = self.person()
        known = self.known.get((person, generation))
        if known is None:
            return self.check()
        op = self.rng.choice(("history", "states"))
        path = f"/api/v1/subjects/{known}/consents" + ("/history" if op == "history" else "")
        self.call(op, "GET", path)
        return None

    # --- records: attaching identifiers and merging ----------------------------------------------------------
    def ingest(self, *, cross: bool = False) -> None:
        """A till receipt naming what the till knows of the person; now and then the same receipt again (an
        update, which may move it), and now and then one that names two people (`cross`: a merge, or a proposal
        when both hold a customer number)."""
        person, generation = self.person()
        ids = some_identifiers(self.rng, person, generation)
        if cross:
            other = (person + 1 + self.rng.randrange(PEOPLE - 1)) % PEOPLE
            ids = {
                "email": identifiers(person, generation)["email"],
                "customer_number": identifiers(other, generation)["customer_number"],
            }
        mine = self.records.setdefault((person, generation), [])
        if mine and self.rng.random() < 0.2:
            external_id = self.rng.choice(mine)
        else:
            self.counter += 1
            external_id = f"soak-{self.plan.index}-{self.counter}"
            mine.append(external_id)
        body = {
            "source": "pos",
            "external_id": external_id,
            "category": "purchases",
            "identifiers": ids,
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {"sku": f"ROPE-{self.rng.randrange(100)}", "amount": self.rng.randrange(1, 500)},
        }
        sent = {"source": "pos", "external_id": external_id}
        status, answer = self.call("ingest-cross" if cross else "ingest", "POST", "/api/v1/records", body, sent=sent)
        if status in (200, 201) and isinstance(answer, dict) and not cross:
            self.known[(person, generation)] = answer["subject"]

    # --- rights requests -----------------------------------------------------------------------------------
    def rights(self) -> None:
        """Access, portability and restriction verified (they run at once), objections (in force at once), and
        erasures: most verified, then approved now or later (they run while the others keep writing to the
        person), some left unverified (those stay open, legitimately, waiting for the identity check)."""
        person, generation = self.person()
        kinds = ("access", "access", "portability", "restriction", "objection", "objection", "erasure", "erasure")
        kind = self.rng.choice(kinds)
        details: dict[str, Any] = {}
        if kind == "restriction":
            details = {"ground": "18(1)(a)"}
        elif kind == "objection":
            details = self.rng.choice(({"scope": "direct_marketing"}, {"purpose": "offers"}, {"purpose": "newsletter"}))
        verified = kind != "erasure" or self.rng.random() < 0.7
        body = {
            "kind": kind,
            "subject": self.reference(person, generation),
            "channel": "soak-desk",
            "verified": verified,
            "details": details,
        }
        status, answer = self.call(f"request-{kind}", "POST", "/api/v1/requests", body, sent={"kind": kind})
        if status == 202 and isinstance(answer, dict):
            self.requests.append(answer["id"])
            if kind == "restriction":
                self.restrictions.append(answer["id"])
            if kind == "erasure" and verified:
                self.erasures.append(answer["id"])
                if self.rng.random() < 0.5:
                    self.approve()

    def approve(self) -> None:
        """Approve an erasure awaiting approval (as the DPO's desk would, through the API)."""
        if not self.erasures:
            return self.rights()
        request_id = self.erasures.pop(self.rng.randrange(len(self.erasures)))
        self.call("approve", "POST", f"/api/v1/requests/{request_id}/approve", {}, sent={"request": request_id})
        return None

    def request_read(self) -> None:
        if not self.requests:
            return self.rights()
        self.call("request-read", "GET", f"/api/v1/requests/{self.rng.choice(self.requests)}")
        return None

    def lift(self) -> None:
        """End a restriction (409 while it is not completed yet: legitimate)."""
        if not self.restrictions:
            return self.rights()
        request_id = self.restrictions.pop(self.rng.randrange(len(self.restrictions)))
        self.call("lift", "POST", f"/api/v1/requests/{request_id}/lift", {}, sent={"request": request_id})
        return None

    def operations(self) -> list[tuple[Callable[[], None], int]]:
        return [
            (self.grant, 18),
            (self.confirm, 5),
            (self.withdraw, 12),
            (self.object, 4),
            (self.check, 15),
            (self.check_bulk, 4),
            (self.history, 4),
            (self.ingest, 12),
            (lambda: self.ingest(cross=True), 3),
            (self.rights, 8),
            (self.approve, 1),
            (self.request_read, 3),
            (self.lift, 1),
        ]


def _ids_of(answer: Any) -> Any:
    """The parts of an answer the audit needs: ids and states, never a whole export or list."""
    if not isinstance(answer, dict):
        return None
    keep = ("event", "subject", "state", "record", "merge_proposal", "id", "kind", "status", "code", "allowed")
    return {k: answer[k] for k in keep if k in answer}


def run(plan: ClientPlan) -> None:
    """The client process's entry point: calls until the deadline, each line flushed as it is written."""
    rng = random.Random(plan.seed)
    headers = {"Authorization": f"Bearer {plan.key}"}
    deadline = time.monotonic() + plan.seconds
    with (
        Path(plan.journal).open("w", buffering=1) as out,
        httpx.Client(base_url=plan.base, headers=headers, timeout=60.0) as http,
    ):
        client = Client(plan, http, rng, out)
        operations = client.operations()
        choices, weights = [op for op, _ in operations], [w for _, w in operations]
        while time.monotonic() < deadline:
            rng.choices(choices, weights)[0]()
