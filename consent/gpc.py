"""Global Privacy Control (https://privacycg.github.io/gpc-spec/): a browser's `Sec-GPC: 1` is its person's request not
to have their data sold or shared, and not to be targeted with advertising.

Assent honours the signal where it arrives with an act of the person: a consent write a client forwards it with (the
shop passes on its visitor's header), or a save in the portal. It records an objection (source `gpc`, reserved for
Assent) to every purpose the catalogue marks `gpc: true` that the person does not already object to. An objection is
Art. 21: it beats any consent or legitimate interest until the person lifts it. A GET never records anything (mail
scanners and prefetchers send requests nobody made)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from consent.ledger.recording import ConsentCommand
from consent.models import ConsentEvent, Objection, Purpose
from consent.services import consent_record
from subjects.identity import Reference

GPC_SOURCE = "gpc"
GPC_HEADER = "Sec-GPC"


def gpc_signal(headers: Mapping[str, str]) -> bool:
    """Whether a request carries the signal: the header's value is exactly "1" (the specification's only value)."""
    return headers.get(GPC_HEADER, "").strip() == "1"


def gpc_purposes() -> list[str]:
    return sorted(Purpose.objects.filter(gpc=True).values_list("key", flat=True))


def gpc_honour(
    *, subject_id: uuid.UUID, via: str, client_id: int | None = None, spare: frozenset[str] = frozenset()
) -> list[str]:
    """Object, for the person, to each purpose marked `gpc: true`; the keys objected now, each one ledger event of its
    own (an empty list: nothing left to do). `via` names where the signal came in (`api`, `portal`) in the evidence.

    The signal is honoured once per purpose: a purpose the person objects to already, or whose objection came from
    the signal before, is left alone, so that a person who later chose that purpose explicitly (which lifts the
    objection) is not overruled by their browser on every visit. `spare`: purposes the person chooses explicitly in
    the very act that carries the signal (a grant in the same save); their own choice wins over the browser's."""
    wanted = [key for key in gpc_purposes() if key not in spare]
    if not wanted:
        return []
    done = set(Objection.objects.filter(subject_id=subject_id, purpose__in=wanted).values_list("purpose", flat=True))
    done |= set(
        ConsentEvent.objects.filter(subject_id=subject_id, source=GPC_SOURCE, purpose__in=wanted).values_list(
            "purpose", flat=True
        )
    )
    objected = []
    for key in wanted:
        if key in done:
            continue
        consent_record(
            command=ConsentCommand(
                reference=Reference(subject_id, ()),
                purpose=key,
                action="object",
                source=GPC_SOURCE,
                evidence={"signal": f"{GPC_HEADER}: 1", "via": via},
                client_id=client_id,
            ),
            internal=True,
        )
        objected.append(key)
    return objected
