"""The catalogue in the admin: edits go through catalogue_apply (one revision each, every rule holds); a notice's
texts never change, a new text is a new version; consents on outdated versions are counted."""

from __future__ import annotations

from typing import Any

from django.test import Client

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.edit import catalogue_document
from consent.catalogue.snapshot import catalogue_forget, catalogue_snapshot
from consent.models import AuditEntry, CatalogueRevision, Channel, Notice, Purpose, SourceCategory
from tests.api import Api


def purpose_form(key: str, **changes: Any) -> dict[str, Any]:
    """The change form of a stored purpose as the browser would post it, with some fields changed."""
    purpose = Purpose.objects.prefetch_related("channels", "data_categories").get(key=key)
    data: dict[str, Any] = {
        "name": purpose.name,
        "legal_basis": purpose.legal_basis,
        "channels": [c.pk for c in purpose.channels.all()],
        "data_categories": [c.pk for c in purpose.data_categories.all()],
        "double_opt_in": list(purpose.double_opt_in),
        "consent_valid_days": purpose.consent_valid_days or "",
        "dpv": purpose.dpv,
        "automated_decision": purpose.automated_decision,
        "tcf_purposes": ", ".join(str(t) for t in purpose.tcf_purposes),
        "new_notice_version": "",
        "new_notice_text_de": "",
        "new_notice_text_en": "",
    }
    for flag in ("marketing", "uwg_7_3", "gpc", "reads_device_identifiers"):
        if getattr(purpose, flag):
            data[flag] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_dpo_renames_a_purpose_as_a_new_catalogue_revision(dpo: Client) -> None:
    revisions = CatalogueRevision.objects.count()
    purpose = Purpose.objects.get(key="newsletter")

    response = dpo.post(f"/admin/consent/purpose/{purpose.pk}/change/", purpose_form("newsletter", name="Our letter"))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Purpose.objects.get(key="newsletter").name == "Our letter"
    assert CatalogueRevision.objects.count() == revisions + 1
    latest = CatalogueRevision.objects.order_by("-pk").first()
    assert latest is not None
    assert next(p for p in latest.document["purposes"] if p["key"] == "newsletter")["name"] == "Our letter"
    entry = AuditEntry.objects.get(action="change", object_type="consent.purpose")
    assert entry.object_id == str(purpose.pk)
    assert "Our letter" not in entry.detail


def test_saving_a_purpose_without_a_change_adds_no_revision(dpo: Client) -> None:
    revisions = CatalogueRevision.objects.count()
    purpose = Purpose.objects.get(key="offers")

    response = dpo.post(f"/admin/consent/purpose/{purpose.pk}/change/", purpose_form("offers"))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert CatalogueRevision.objects.count() == revisions


def test_the_catalogue_rules_hold_in_the_admin(dpo: Client) -> None:
    purpose = Purpose.objects.get(key="offers")  # legitimate-interest marketing
    phone = Channel.objects.get(key="phone")

    response = dpo.post(
        f"/admin/consent/purpose/{purpose.pk}/change/",
        purpose_form("offers", channels=[*purpose_form("offers")["channels"], phone.pk]),
    )

    assert response.status_code == 200
    assert "UWG §7(2) Nr. 1" in response.content.decode()
    assert not Purpose.objects.get(key="offers").channels.filter(key="phone").exists()


def test_editing_a_notice_text_creates_a_new_version(dpo: Client) -> None:
    purpose = Purpose.objects.get(key="newsletter")
    old = Notice.objects.get(purpose=purpose, version="2026-01")

    response = dpo.post(
        f"/admin/consent/purpose/{purpose.pk}/change/",
        purpose_form(
            "newsletter",
            new_notice_version="2026-06",
            new_notice_requires_reconsent="on",
            new_notice_text_de="Neuer Text.",
            new_notice_text_en="New text.",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Notice.objects.get(pk=old.pk).texts == old.texts
    new = Notice.objects.get(purpose=purpose, version="2026-06")
    assert new.texts == {"de": "Neuer Text.", "en": "New text."}
    assert new.requires_reconsent
    catalogue_forget()
    assert catalogue_snapshot().purposes["newsletter"].current_notice == "2026-06"


def test_a_notice_version_that_exists_cannot_get_another_text(dpo: Client) -> None:
    purpose = Purpose.objects.get(key="newsletter")

    response = dpo.post(
        f"/admin/consent/purpose/{purpose.pk}/change/",
        purpose_form("newsletter", new_notice_version="2026-01", new_notice_text_de="x", new_notice_text_en="y"),
    )

    assert response.status_code == 200
    assert "needs a version of its own" in response.content.decode()
    assert Notice.objects.get(purpose=purpose, version="2026-01").texts["en"] == "We send you our newsletter."


def test_a_notice_is_never_changed_in_place_but_a_new_version_can_start_from_it(dpo: Client) -> None:
    notice = Notice.objects.get(purpose__key="newsletter", version="2026-01")

    page = dpo.get(f"/admin/consent/notice/{notice.pk}/change/")
    post = dpo.post(f"/admin/consent/notice/{notice.pk}/change/", {"version": "x", "requires_reconsent": "on"})
    delete = dpo.post(f"/admin/consent/notice/{notice.pk}/delete/", {"post": "yes"})
    start = dpo.get(f"/admin/consent/notice/add/?from={notice.pk}")
    added = dpo.post(
        "/admin/consent/notice/add/",
        {"purpose": notice.purpose_id, "version": "2026-02", "text_de": "Zwei.", "text_en": "Two."},
    )

    assert page.status_code == 200
    assert "New version from this text" in page.content.decode()
    assert post.status_code == 403
    assert delete.status_code == 403
    assert "We send you our newsletter." in start.content.decode()
    assert added.status_code == 302, added.content.decode()[:3000]
    assert Notice.objects.filter(purpose__key="newsletter").count() == 2
    assert Notice.objects.get(pk=notice.pk).version == "2026-01"


def test_purposes_show_consents_on_outdated_notice_versions(dpo: Client, anna: str) -> None:
    purpose = Purpose.objects.get(key="newsletter")
    dpo.post(
        f"/admin/consent/purpose/{purpose.pk}/change/",
        purpose_form(
            "newsletter",
            new_notice_version="2026-07",
            new_notice_requires_reconsent="on",
            new_notice_text_de="Neu.",
            new_notice_text_en="New.",
        ),
    )

    listing = dpo.get("/admin/consent/purpose/").content.decode()
    detail = dpo.get(f"/admin/consent/purpose/{purpose.pk}/change/").content.decode()

    assert "2 on 2026-01" in listing  # anna's sms and push grants
    assert "2 consents outdated" in detail


def test_dpo_adds_a_channel_and_edits_a_retention_period(dpo: Client) -> None:
    added = dpo.post("/admin/consent/channel/add/", {"key": "letter", "name": "Letter"})
    holding = SourceCategory.objects.get(source__key="pos", category__key="contact")
    changed = dpo.post(
        f"/admin/consent/sourcecategory/{holding.pk}/change/",
        {"delete_after_days": 730, "legal_hold_years": "", "legal_hold_from": "", "legal_hold_law": ""},
    )

    assert added.status_code == 302, added.content.decode()[:3000]
    assert Channel.objects.filter(key="letter", name="Letter").exists()
    assert changed.status_code == 302, changed.content.decode()[:3000]
    assert SourceCategory.objects.get(pk=holding.pk).delete_after_days == 730
    catalogue_forget()
    assert catalogue_snapshot().sources["pos"]["contact"].delete_after_days == 730


def test_nothing_in_the_catalogue_is_deleted_through_the_admin(dpo: Client) -> None:
    channel = Channel.objects.get(key="push")

    assert dpo.post(f"/admin/consent/channel/{channel.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Channel.objects.filter(pk=channel.pk).exists()


def test_support_sees_the_catalogue_but_cannot_change_it(support: Client) -> None:
    purpose = Purpose.objects.get(key="newsletter")

    page = support.get(f"/admin/consent/purpose/{purpose.pk}/change/")
    change = support.post(f"/admin/consent/purpose/{purpose.pk}/change/", purpose_form("newsletter", name="Hacked"))
    add = support.get("/admin/consent/purpose/add/")
    channel_add = support.post("/admin/consent/channel/add/", {"key": "fax", "name": "Fax"})
    notice_add = support.get("/admin/consent/notice/add/")

    assert page.status_code == 200
    assert change.status_code == 403
    assert add.status_code == 403
    assert channel_add.status_code == 403
    assert notice_add.status_code == 403
    assert Purpose.objects.get(key="newsletter").name == "Newsletter"
    assert not Channel.objects.filter(key="fax").exists()


def test_the_catalogue_export_applies_as_no_change(catalogue: dict[str, Any], api: Api) -> None:
    result = catalogue_apply(document=catalogue_document())

    assert result.changes == []
