"""After the soak: the clients' journals (what each was told) against the database (what is). Every finding is a
sentence naming what differs; the test asserts there are none.

What counts as told: a 201 to POST /consents (its `event`, `subject`, `state`), a 200/201/202 to POST /records
(`record`, `subject`, `merge_proposal`), a 202 to POST /requests (`id`). A replay under an Idempotency-Key tells
the first answer again, and must be identical to it when the first was a 201 (a first refusal stores nothing, and an
erasure of the person forgets the key, so such a replay is a new attempt and may be told a new event).

An approved erasure moves the person's events out of the ledger into the evidence store (EvidenceArchive): an event
told and not in the ledger must be there, on the chain told, as asked (the archive keeps no event ids, so it is
matched by chain, action, purpose, channel, source and client, each archived event once). The records of an erased
person go (the till keeps its own copy under its legal hold), and nothing of theirs may stay behind.

What the ledger (or the archive) may hold that no client was told (the system's own events, exactly): events without
an API client, recorded by Assent itself, that is a `merged` event (both chains of a merge: source `merge`), an
`object` event of an objection opened as a rights request (source `rights-request`; at most one per objection
request), and in the archive the `erased` event that closes each erased chain. Nothing else: no expiry runs
(consents are 730 days valid), nobody clicks a confirmation link, nothing is split."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consent.adapters.evidence_archive import ARCHIVE_COLUMN
from consent.ledger.verification import verify_full
from consent.models import ApiClient, ConsentEvent, ConsentState, EvidenceArchive
from subjects import crypto
from subjects.keys import data_key
from subjects.models import Identifier, LinkedRecord, MergeProposal, RightsRequest, Subject
from subjects.rights.vault import vault_key_open
from subjects.selectors import subject_identifiers
from subjects.suppression import identifiers_suppressed
from tests.soak.population import MERGE_KINDS

CONSENT_WRITES = ("grant", "confirm", "withdraw", "object")
SYSTEM_EVENTS = {("merged", "merge"), ("object", "rights-request"), ("erased", "rights-request")}
STATE_AFTER = {"withdraw": {"withdrawn"}, "object": {"objected"}, "grant": {"granted", "pending_confirmation"}}
STATE_AFTER["confirm"] = {"granted"}
FINAL = {RightsRequest.Status.COMPLETED, RightsRequest.Status.REJECTED}
# An erasure opened unverified waits for the identity check, one not approved waits for approval: open, legitimately,
# and nothing else is.
LEGITIMATELY_OPEN = {("erasure", RightsRequest.Status.RECEIVED), ("erasure", RightsRequest.Status.AWAITING_APPROVAL)}


@dataclass(frozen=True, slots=True)
class Line:
    client: int
    op: str
    status: int | str
    sent: Any
    got: Any
    body: Any = None


def journals(paths: list[Path]) -> list[Line]:
    lines = []
    for client, path in enumerate(paths):
        for raw in path.read_text().splitlines():
            item = json.loads(raw)
            lines.append(Line(client, item["op"], item["status"], item["sent"], item["got"], item.get("body")))
    return lines


@dataclass
class Told:
    events: dict[uuid.UUID, Line] = field(default_factory=dict)
    records: dict[uuid.UUID, Line] = field(default_factory=dict)
    proposals: set[uuid.UUID] = field(default_factory=set)
    requests: dict[uuid.UUID, str] = field(default_factory=dict)  # id -> kind
    approved: set[uuid.UUID] = field(default_factory=set)  # erasures
    objections_opened: int = 0


@dataclass
class Audit:
    lines: list[Line]
    client_ids: list[int]  # ApiClient pk per client index
    findings: list[str] = field(default_factory=list)
    told: Told = field(default_factory=Told)
    events_checked: int = 0
    archived_checked: int = 0
    subjects_verified: int = 0

    # --- the figures ----------------------------------------------------------------------------------------
    def operations(self) -> Counter[str]:
        return Counter(line.op for line in self.lines)

    def statuses(self) -> Counter[str]:
        return Counter(str(line.status) for line in self.lines)

    def refusals(self) -> Counter[str]:
        """The 4xx answers by status and problem code: what the product refused, and why."""
        return Counter(
            f"{line.status} {(line.got or {}).get('code', '?')}"
            for line in self.lines
            if isinstance(line.status, int) and 400 <= line.status < 500
        )

    def statuses_by_op(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for line in self.lines:
            out.setdefault(line.op, Counter())[str(line.status)] += 1
        return out

    def summary(self) -> str:
        rows = [f"soak: {len(self.lines)} operations by {len(self.client_ids)} client processes"]
        for op, statuses in sorted(self.statuses_by_op().items()):
            rows.append(
                f"  {op:<22} {sum(statuses.values()):>6}   "
                + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            )
        rows.append("  status codes: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses().items())))
        rows.append("  refusals: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.refusals().items())))
        rows.append(
            f"  ledger events checked against the clients' journals: {self.events_checked} (of them in the evidence "
            f"store of erased people: {self.archived_checked}); subjects verified: "
            f"{self.subjects_verified}; records told: {len(self.told.records)}; rights requests told: "
            f"{len(self.told.requests)}; merge proposals told: {len(self.told.proposals)}"
        )
        rows.append(f"  findings: {len(self.findings)}")
        rows.extend(f"    - {finding}" for finding in self.findings[:60])
        return "\n".join(rows)

    # --- the checks -----------------------------------------------------------------------------------------
    def run(self) -> None:
        self.answers()
        self.collect()
        self.events()
        self.chains()
        self.records()
        self.requests()
        self.identifiers()
        self.erased()

    def answers(self) -> None:
        """Zero 5xx and an answer to every call."""
        for line in self.lines:
            if isinstance(line.status, str) or line.status >= 500:
                self.findings.append(f"client {line.client} {line.op}: {line.status} {line.body or ''}")

    def collect(self) -> None:
        told = self.told
        for line in self.lines:
            got = line.got or {}
            if line.op in CONSENT_WRITES and line.status == 201:
                told.events[uuid.UUID(got["event"])] = line
            elif line.op == "replay":
                first_status, first_got = line.sent["first"]
                # An erasure forgets the idempotency rows that name the person (consent's rights port): a replay
                # after it is a new attempt, as a replay after a refusal is.
                forgotten = first_status != 201 or erased_since(first_got["subject"])
                if not forgotten and (line.status, line.got) != (201, first_got):
                    self.findings.append(
                        f"client {line.client} replay answered {line.status} {line.got}, first 201 {first_got}"
                    )
                elif forgotten and line.status == 201:
                    told.events[uuid.UUID(got["event"])] = line
            elif line.op.startswith("ingest") and line.status in (200, 201, 202):
                told.records[uuid.UUID(got["record"])] = line
                if got.get("merge_proposal"):
                    told.proposals.add(uuid.UUID(got["merge_proposal"]))
            elif line.op.startswith("request-") and line.op != "request-read" and line.status == 202:
                told.requests[uuid.UUID(got["id"])] = line.sent["kind"]
                told.objections_opened += line.sent["kind"] == "objection"
            elif line.op == "approve" and line.status == 202:
                told.approved.add(uuid.UUID(line.sent["request"]))

    def events(self) -> None:
        """Zero lost writes: every event told is in the ledger as asked, on the subject told; nothing else is
        there but the system's own events."""
        stored = {e.id: e for e in ConsentEvent.objects.all()}
        names = dict(ApiClient.objects.filter(pk__in=self.client_ids).values_list("pk", "name"))
        archived = archived_events()
        for event_id, line in self.told.events.items():
            self.events_checked += 1
            event = stored.pop(event_id, None)
            asked, got = line.sent, line.got
            if event is None:
                chain = str(got["subject"])
                key = (chain, asked["action"], asked["purpose"], asked["channel"] or "", asked["source"])
                if archived[(*key, names[self.client_ids[line.client]])] > 0:
                    archived[(*key, names[self.client_ids[line.client]])] -= 1
                    self.archived_checked += 1
                else:
                    self.findings.append(
                        f"lost write: client {line.client} was told event {event_id} ({asked}), in neither the "
                        "ledger nor the evidence store"
                    )
                continue
            want = (
                str(got["subject"]),
                asked["action"],
                asked["purpose"],
                asked["channel"] or "",
                asked["source"],
                self.client_ids[line.client],
            )
            have = (str(event.subject_id), event.action, event.purpose, event.channel, event.source, event.client_id)
            if want != have:
                self.findings.append(f"event {event_id}: client {line.client} asked/was told {want}, ledger has {have}")
            if got["state"] not in STATE_AFTER[asked["action"]] and not self.suppressed_confirm(line):
                self.findings.append(f"event {event_id}: a {asked['action']} was answered with state {got['state']!r}")
        system = Counter()
        for event in stored.values():
            if event.client_id is not None or (event.action, event.source) not in SYSTEM_EVENTS:
                self.findings.append(
                    f"untold event {event.id} on {event.subject_id}: {event.action} {event.purpose}/{event.channel} "
                    f"from {event.source} by client {event.client_id}"
                )
            system[event.source] += 1
            self.events_checked += 1
        for (chain, action, purpose, channel, source, client), count in archived.items():
            if count and (client is not None or (action, source) not in SYSTEM_EVENTS):
                self.findings.append(
                    f"{count} untold archived event(s) of chain {chain}: {action} {purpose}/{channel} from {source} "
                    f"by {client}"
                )
        if system["rights-request"] > self.told.objections_opened:
            self.findings.append(
                f"{system['rights-request']} objection events from rights requests, only "
                f"{self.told.objections_opened} objections were opened"
            )

    def suppressed_confirm(self, line: Line) -> bool:
        """A client's confirm for a person any of whose identifiers belonged to an erased person waits for the
        person (DESIGN.md, Erasure: the suppression list; recording checks the reference's identifiers and every one
        the subject holds, and a state already held pending by the list stays so). Pending is right when the
        list holds an identifier of this reference, of the subject (as it is now, following merges), or of any
        reference an earlier write for this person named: a grant whose reference carried a listed e-mail beside
        the id (not attached: an unknown identifier beside known ones is ignored) holds the state pending too."""
        if line.sent["action"] != "confirm" or line.got["state"] != "pending_confirmation":
            return False
        identifiers = list(line.sent["identifiers"].items())
        subject = self._survivor(line.got["subject"])
        if subject is not None and subject.wrapped_key is not None:
            identifiers += subject_identifiers(subject=subject, key=data_key(subject))
        elif subject is not None:
            return True  # erased since: the list holds every identifier the person had, the audit cannot tell more
        for other in self.told.events.values():
            if other.sent["action"] == "grant" and self._survivor(other.got["subject"]) == subject:
                identifiers += list(other.sent["identifiers"].items())
        return identifiers_suppressed(identifiers=identifiers)

    @staticmethod
    def _survivor(subject_id: object) -> Subject | None:
        subject = Subject.objects.filter(pk=subject_id).first()
        if subject is not None and subject.merged_into_id is not None:
            subject = Subject.objects.get(pk=subject.merged_into_id)
        return subject

    def chains(self) -> None:
        """Every chain verifies, and every state row equals its re-projection (consent.ledger.verification)."""
        result = verify_full()
        self.subjects_verified = result.subjects_checked
        self.findings.extend(f"verify_ledger: {problem}" for problem in result.problems)

    def records(self) -> None:
        """Every record told exists, on a live subject; every proposal told exists; no record nobody sent."""
        rows = {r.id: r for r in LinkedRecord.objects.select_related("subject")}
        sent = {(line.sent["source"], line.sent["external_id"]) for line in self.lines if line.op.startswith("ingest")}
        erased = set(Subject.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
        owners: dict[tuple[str, str], set[uuid.UUID]] = {}  # every subject told for a (source, external id)
        for line in self.told.records.values():
            owners.setdefault((line.sent["source"], line.sent["external_id"]), set()).add(
                uuid.UUID(line.got["subject"])
            )
        for record_id, line in self.told.records.items():
            row = rows.get(record_id)
            if row is None:
                if not owners[(line.sent["source"], line.sent["external_id"])] & erased:
                    self.findings.append(f"lost record: client {line.client} was told record {record_id}, not stored")
            elif (row.source, row.external_id) != (line.sent["source"], line.sent["external_id"]):
                self.findings.append(f"record {record_id} is {row.source}/{row.external_id}, told {line.sent}")
        for row in rows.values():
            if row.subject.merged_into_id is not None:
                self.findings.append(f"record {row.id} stays on absorbed subject {row.subject_id}")
            if (row.source, row.external_id) not in sent:
                self.findings.append(f"record {row.id} ({row.source}/{row.external_id}) was never sent")
        missing = self.told.proposals - set(MergeProposal.objects.values_list("pk", flat=True))
        self.findings.extend(f"lost merge proposal {pk}" for pk in sorted(missing))

    def requests(self) -> None:
        """Every rights request told exists and reached a final state, or is an unverified erasure."""
        rows = {r.id: r for r in RightsRequest.objects.all()}
        for request_id, kind in self.told.requests.items():
            row = rows.get(request_id)
            if row is None:
                self.findings.append(f"lost rights request {request_id} ({kind})")
            elif row.status not in FINAL and (
                (row.kind, row.status) not in LEGITIMATELY_OPEN or request_id in self.told.approved
            ):
                self.findings.append(f"rights request {request_id} ({kind}) ended {row.status}: {row.result}")
        if untold := set(rows) - set(self.told.requests):
            self.findings.append(f"{len(untold)} rights requests no client was told of")

    def identifiers(self) -> None:
        """One person-bound identifier, one live subject: two writers racing for a new person make one subject,
        and a merge leaves nothing behind on the absorbed side."""
        holders: dict[tuple[str, bytes], set[uuid.UUID]] = {}
        rows = Identifier.objects.filter(kind__in=MERGE_KINDS).values_list("kind", "blind_index", "subject_id")
        for kind, digest, subject_id in rows:
            holders.setdefault((kind, bytes(digest)), set()).add(subject_id)
        live = set(Subject.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
        for (kind, digest), subjects in holders.items():
            if len(subjects) != 1 or not subjects <= live:
                self.findings.append(
                    f"{kind} {digest.hex()[:12]} is held by {len(subjects)} subjects ({len(subjects & live)} live): "
                    + ", ".join(sorted(map(str, subjects)))
                )

    def erased(self) -> None:
        """An erased person keeps nothing: no identifier, record, event or consent state, no data key."""
        erased = Subject.objects.filter(erased_at__isnull=False)
        left = {
            "identifiers": Identifier.objects.filter(subject__in=erased).count(),
            "records": LinkedRecord.objects.filter(subject__in=erased).count(),
            "events": ConsentEvent.objects.filter(subject__in=erased).count(),
            "consent states": ConsentState.objects.filter(subject__in=erased).count(),
            "data keys": erased.filter(wrapped_key__isnull=False).count(),
        }
        self.findings.extend(f"{count} {what} left on erased subjects" for what, count in left.items() if count)


def erased_since(subject_id: str) -> bool:
    return Subject.objects.filter(pk=subject_id, erased_at__isnull=False).exists()


def archived_events() -> Counter[tuple[str, str, str, str, str, str | None]]:
    """Every event in the evidence store, opened with its vault key, as (chain, action, purpose, channel, source,
    client name)."""
    found: Counter[tuple[str, str, str, str, str, str | None]] = Counter()
    for archive in EvidenceArchive.objects.select_related("vault"):
        rows = json.loads(
            crypto.open_sealed(
                vault_key_open(archive.vault), bytes(archive.events_enc), archive.id.bytes + ARCHIVE_COLUMN.encode()
            )
        )
        for row in rows:
            found[(row["chain"], row["action"], row["purpose"], row["channel"], row["source"], row["client"])] += 1
    return found
