"""Applying a catalogue document: idempotent and never destructive. What the file leaves out stays, a notice
version's texts never change once stored, and every applied file is kept as a CatalogueRevision."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from config.names import Name, localised
from consent.catalogue.reader import KEY
from consent.catalogue.snapshot import catalogue_forget
from consent.catalogue.spec import CatalogueError, CatalogueSpec, NoticeSpec, PurposeSpec
from consent.catalogue.validate import catalogue_parse
from consent.models import (
    CatalogueRevision,
    Channel,
    ConsentState,
    DataCategory,
    Notice,
    Purpose,
    Source,
    SourceCategory,
)
from subjects.connectors.pgmap import POSTGRESQL, pg_map_from_connector
from subjects.connectors.pgschema import pg_map_check_live


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision_id: int
    changed: bool
    changes: list[str]


_LOCK_ID = int.from_bytes(hashlib.sha256(b"assent:catalogue").digest()[:8], "big", signed=True)


def catalogue_apply(*, document: object) -> ApplyResult:
    """Apply a catalogue document: upsert by key, add new notice versions, keep what the file leaves out, and
    store the document as a new revision. The same document twice writes nothing the second time. Any problem
    raises CatalogueError before a row is written (the transaction covers whatever could still fail). A connector
    whose database is reachable (its DSN set) is checked against the live schema first, outside the transaction
    (network I/O)."""
    catalogue, problems = catalogue_parse(document)
    if problems or catalogue is None or not isinstance(document, dict):
        raise CatalogueError(problems)
    problems = connectors_check_live(catalogue)
    if problems:
        raise CatalogueError(problems)
    return _catalogue_write(document, catalogue)


def connectors_check_live(catalogue: CatalogueSpec) -> list[str]:
    """Every mismatch between a PostgreSQL connector's map and its live schema, when its DSN is set."""
    problems: list[str] = []
    for index, source in enumerate(catalogue.sources):
        if source.connector is not None and source.connector.get("type") == POSTGRESQL:
            place = f"sources[{index}].connector"
            problems.extend(pg_map_check_live(pg_map_from_connector(source.connector), place))
    return problems


@transaction.atomic(durable=True)
def _catalogue_write(document: dict[str, Any], catalogue: CatalogueSpec) -> ApplyResult:
    digest = hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    # Two operators applying at once: the second waits and then compares against the first one's revision.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    latest = CatalogueRevision.objects.order_by("-pk").first()
    if latest is not None and latest.digest == digest:
        return ApplyResult(revision_id=latest.pk, changed=False, changes=[])
    conflicts = _notice_conflicts(catalogue)
    if conflicts:
        raise CatalogueError(conflicts)

    now = timezone.now()
    changes: list[str] = []
    if latest is None or list(latest.merge_identifiers) != list(catalogue.merge_identifiers):
        before = ", ".join(latest.merge_identifiers) if latest is not None else "(none)"
        changes.append(f"merge_identifiers: {before} -> {', '.join(catalogue.merge_identifiers) or '(none)'}")
    one_before = (latest.document or {}).get("one_per_person", []) if latest is not None else []
    if isinstance(document, dict) and list(one_before) != list(document.get("one_per_person", [])):
        changes.append(
            f"one_per_person: {', '.join(one_before) or '(none)'} -> "
            f"{', '.join(document.get('one_per_person', [])) or '(none)'}"
        )
    channels = _apply_channels(catalogue, changes)
    categories = _apply_categories(catalogue, changes)
    _apply_purposes(catalogue, channels, categories, now, changes)
    _apply_sources(catalogue, categories, changes)
    revision = CatalogueRevision.objects.create(
        applied_at=now, digest=digest, merge_identifiers=list(catalogue.merge_identifiers), document=document
    )
    transaction.on_commit(catalogue_forget)
    return ApplyResult(revision_id=revision.pk, changed=True, changes=changes)


def _notice_conflicts(catalogue: CatalogueSpec) -> list[str]:
    """A stored notice version is the text people agreed to: it never changes (API.md)."""
    with_notice = {p.key: p for p in catalogue.purposes if p.notice is not None}
    stored = Notice.objects.filter(purpose__key__in=with_notice).values_list(
        "purpose__key", "version", "texts", "requires_reconsent"
    )
    problems: list[str] = []
    for key, version, texts, requires_reconsent in stored:
        purpose = with_notice[key]
        notice = purpose.notice
        assert notice is not None
        if notice.version != version:
            continue
        if notice.texts != texts:
            problems.append(
                f"{purpose.place}.notice.texts: version '{version}' of purpose '{key}' is stored with other texts; "
                "a new text needs a new version"
            )
        if notice.requires_reconsent != requires_reconsent:
            problems.append(
                f"{purpose.place}.notice.requires_reconsent: version '{version}' of purpose '{key}' is stored with "
                f"requires_reconsent {str(requires_reconsent).lower()}; a change needs a new version"
            )
    return problems


def _apply_channels(catalogue: CatalogueSpec, changes: list[str]) -> dict[str, Channel]:
    stored = {c.key: c for c in Channel.objects.all()}
    for key, name in catalogue.channels.items():
        channel = stored.get(key)
        if channel is None:
            stored[key] = Channel.objects.create(key=key, **_names(name))
            changes.append(f"channel {key}: added")
        elif changed := _diff(f"channel {key}", channel, _names(name), changes):
            channel.save(update_fields=changed)
    changes.extend(f"channel {key}: absent from the file, kept" for key in sorted(stored.keys() - catalogue.channels))
    return stored


def _apply_categories(catalogue: CatalogueSpec, changes: list[str]) -> dict[str, DataCategory]:
    stored = {c.key: c for c in DataCategory.objects.all()}
    for key, (name, profile, purchase) in catalogue.categories.items():
        category = stored.get(key)
        if category is None:
            stored[key] = DataCategory.objects.create(key=key, **_names(name), profile=profile, purchase=purchase)
            changes.append(f"data category {key}: added")
            continue
        values = {**_names(name), "profile": profile, "purchase": purchase}
        changed = _diff(f"data category {key}", category, values, changes)
        if changed:
            category.save(update_fields=changed)
    changes.extend(
        f"data category {key}: absent from the file, kept" for key in sorted(stored.keys() - catalogue.categories)
    )
    return stored


def _apply_purposes(
    catalogue: CatalogueSpec,
    channels: dict[str, Channel],
    categories: dict[str, DataCategory],
    now: datetime,
    changes: list[str],
) -> None:
    stored = {p.key: p for p in Purpose.objects.prefetch_related("channels", "data_categories", "notices")}
    for spec in catalogue.purposes:
        fields: dict[str, Any] = {
            **_names(spec.name),
            "legal_basis": spec.legal_basis,
            "marketing": spec.marketing,
            "double_opt_in": list(spec.double_opt_in),
            "consent_valid_days": spec.consent_valid_days,
            "uwg_7_3": spec.uwg_7_3,
            "dpv": spec.dpv,
            **_names(spec.automated_decision, "automated_decision", "automated_decision_texts"),
            "gpc": spec.gpc,
            "tcf_purposes": list(spec.tcf_purposes),
            "reads_device_identifiers": spec.reads_device_identifiers,
        }
        label = f"purpose {spec.key}"
        purpose = stored.get(spec.key)
        if purpose is None:
            purpose = Purpose.objects.create(key=spec.key, **fields)
            purpose.channels.set([channels[key] for key in spec.channels])
            purpose.data_categories.set([categories[key] for key in spec.data_categories])
            changes.append(f"{label}: added ({spec.legal_basis}, channels {', '.join(spec.channels)})")
            notices: list[Notice] = []
        else:
            old_basis = purpose.legal_basis
            changed = _diff(label, purpose, fields, changes)
            if changed:
                purpose.save(update_fields=changed)
            if "legal_basis" in changed:
                _report_basis_change(spec, old_basis, changes)
            old_channels = {c.key for c in purpose.channels.all()}
            if old_channels != set(spec.channels):
                purpose.channels.set([channels[key] for key in spec.channels])
                changes.append(f"{label}: channels {_keys(old_channels)} -> {_keys(spec.channels)}")
            old_categories = {c.key for c in purpose.data_categories.all()}
            if old_categories != set(spec.data_categories):
                purpose.data_categories.set([categories[key] for key in spec.data_categories])
                changes.append(f"{label}: data categories {_keys(old_categories)} -> {_keys(spec.data_categories)}")
            notices = list(purpose.notices.all())
        if spec.notice is not None:
            _apply_notice(label, purpose, spec.notice, notices, now, changes)
    in_file = {p.key for p in catalogue.purposes}
    changes.extend(f"purpose {key}: absent from the file, kept" for key in sorted(stored.keys() - in_file))


def _report_basis_change(spec: PurposeSpec, old_basis: str, changes: list[str]) -> None:
    """Allowed, but the DPO should see whose recorded consents now stand on another footing."""
    counts = dict(
        ConsentState.objects.filter(purpose=spec.key).values_list("status").annotate(n=Count("pk")).order_by()
    )
    if counts:
        held = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        changes.append(
            f"purpose {spec.key}: legal basis changed from {old_basis} to {spec.legal_basis} while consent states "
            f"exist ({held}); checks now follow {spec.legal_basis}, the ledger keeps every event"
        )


def _apply_notice(
    label: str, purpose: Purpose, notice: NoticeSpec, stored: list[Notice], now: datetime, changes: list[str]
) -> None:
    if any(n.version == notice.version for n in stored):
        newest = stored[-1].version if stored else notice.version
        if newest != notice.version:
            changes.append(
                f"{label}: the file names notice {notice.version}, older than the stored {newest}, which stays current"
            )
        return
    Notice.objects.create(
        purpose=purpose,
        version=notice.version,
        requires_reconsent=notice.requires_reconsent,
        texts=notice.texts,
        created_at=now,
    )
    reconsent = " (requires re-consent: consents to earlier versions are outdated)" if notice.requires_reconsent else ""
    changes.append(f"{label}: notice {notice.version} added{reconsent}")


def _apply_sources(catalogue: CatalogueSpec, categories: dict[str, DataCategory], changes: list[str]) -> None:
    stored = {s.key: s for s in Source.objects.prefetch_related("categories__category")}
    for spec in catalogue.sources:
        label = f"source {spec.key}"
        source = stored.get(spec.key)
        if source is None:
            source = Source.objects.create(
                key=spec.key, **_names(spec.name), system_of_record=spec.system_of_record, connector=spec.connector
            )
            changes.append(f"{label}: added")
            holdings: dict[str, SourceCategory] = {}
        else:
            values = {**_names(spec.name), "system_of_record": spec.system_of_record}
            changed = _diff(label, source, values, changes)
            if source.connector != spec.connector:
                changes.append(f"{label}: connector {'removed' if spec.connector is None else 'set'}")
                source.connector = spec.connector
                changed.append("connector")
            if changed:
                source.save(update_fields=changed)
            holdings = {h.category.key: h for h in source.categories.all()}
        for holding in spec.categories:
            values = {
                "delete_after_days": holding.delete_after_days,
                "legal_hold_years": holding.hold_years,
                "legal_hold_from": holding.hold_from,
                "legal_hold_law": holding.hold_law,
            }
            row = holdings.get(holding.category)
            if row is None:
                SourceCategory.objects.create(source=source, category=categories[holding.category], **values)
                changes.append(f"{label}: category {holding.category} added")
                continue
            changed = _diff(f"{label}: category {holding.category}", row, values, changes)
            if changed:
                row.save(update_fields=changed)
        in_file = {h.category for h in spec.categories}
        changes.extend(
            f"{label}: category {key} absent from the file, kept" for key in sorted(holdings.keys() - in_file)
        )
    in_file_sources = {s.key for s in catalogue.sources}
    changes.extend(f"source {key}: absent from the file, kept" for key in sorted(stored.keys() - in_file_sources))


def _names(value: Name, field: str = "name", texts: str = "names") -> dict[str, Any]:
    """A name as stored: the German (else any) text in `field`, which every reader can show, and the texts per
    language exactly as given in `texts` (None for a plain string)."""
    return {field: localised(value), texts: dict(value) if isinstance(value, dict) else None}


def _diff(label: str, row: Any, values: dict[str, Any], changes: list[str]) -> list[str]:
    """Set the values that differ on the row; report each; return the changed field names."""
    changed: list[str] = []
    for name, new in values.items():
        old = getattr(row, name)
        if old == new:
            continue
        changed.append(name)
        setattr(row, name, new)
        if name in ("automated_decision", "automated_decision_texts"):
            changes.append(f"{label}: automated_decision text changed")
        else:
            changes.append(f"{label}: {name} {_value(old)} -> {_value(new)}")
    return changed


def _value(value: object) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str) and not KEY.fullmatch(value):
        return f"'{value}'"
    return str(value)


def _keys(keys: set[str] | Sequence[str]) -> str:
    return ", ".join(sorted(keys)) or "(none)"
