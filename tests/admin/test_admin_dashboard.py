"""The dashboard: consent rates per purpose and channel by week (server-side SVG), requests, outdated notices."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from consent.admin.dashboard import consent_rates, outdated_notice_consents, request_summary, undelivered_mails
from consent.catalogue.edit import catalogue_edit, edit_notice
from consent.ledger.recording import ConsentCommand
from consent.models import AuditEntry, Confirmation
from consent.services import consent_record
from subjects.identity import parse_reference
from subjects.mail_delivery import mail_undelivered_record
from subjects.models import RightsRequest, UndeliveredMail
from tests.admin.conftest import speaking
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue


def record(email: str, action: str, channel: str, when: datetime) -> None:
    consent_record(
        command=ConsentCommand(
            reference=parse_reference({"email": email}),
            purpose="newsletter",
            action=action,
            source="webshop",
            channel=channel,
            notice_version="2026-01" if action == "grant" else None,
            occurred_at=when,
        )
    )


def test_consent_rates_follow_grants_and_withdrawals_week_by_week(catalogue: dict[str, object]) -> None:
    now = timezone.now()
    record("a@example.org", "grant", "sms", now - timedelta(weeks=3))
    record("b@example.org", "grant", "sms", now - timedelta(weeks=2))
    record("b@example.org", "withdraw", "sms", now - timedelta(weeks=1))
    record("c@example.org", "withdraw", "sms", now - timedelta(weeks=1))

    sms = next(s for s in consent_rates(now=now, weeks=4) if (s.purpose, s.channel) == ("newsletter", "sms"))

    assert [(p.consented, p.known) for p in sms.points] == [(1, 1), (2, 2), (1, 3), (1, 3)]
    assert (sms.granted_now, sms.recorded_now) == (1, 3)
    assert sms.points[-1].rate == pytest.approx(1 / 3)


def test_consent_rates_count_a_regrant_once(catalogue: dict[str, object]) -> None:
    now = timezone.now()
    record("a@example.org", "grant", "push", now - timedelta(weeks=2))
    record("a@example.org", "grant", "push", now - timedelta(weeks=1))

    push = next(s for s in consent_rates(now=now, weeks=4) if (s.purpose, s.channel) == ("newsletter", "push"))

    assert [(p.consented, p.known) for p in push.points] == [(0, 0), (1, 1), (1, 1), (1, 1)]


def test_dashboard_renders_charts_and_figures_with_data(dpo_en: Client, anna: str) -> None:
    response = dpo_en.get("/admin/dashboard/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in page
    assert "Newsletter: consent rate by week" in page
    assert 'id="request-figures"' in page
    assert "Median days to complete" in page
    assert "anna" not in page.lower()


def test_dashboard_is_open_to_support_and_takes_a_week_count(support: Client, anna: str) -> None:
    assert support.get("/admin/dashboard/?weeks=26").status_code == 200
    assert support.get("/admin/dashboard/?weeks=nonsense").status_code == 200


def test_the_dashboard_needs_a_signed_in_staff_member(client: Client, catalogue: dict[str, object]) -> None:
    assert client.get("/admin/dashboard/").status_code == 302
    assert not AuditEntry.objects.exists()


def test_outdated_notice_consents_are_counted_per_version(catalogue: dict[str, object], anna: str) -> None:
    assert outdated_notice_consents() == []
    texts = {"de": "a", "en": "b"}
    catalogue_edit(edit=edit_notice(purpose="newsletter", version="2026-09", requires_reconsent=True, texts=texts))

    rows = outdated_notice_consents()

    assert [(r.purpose, r.version, r.outdated_by, r.count) for r in rows] == [("newsletter", "2026-01", "2026-09", 2)]


def test_request_summary_counts_open_overdue_due_soon_and_median_days(db: None) -> None:
    now = timezone.now()

    def make(
        status: str, received_days_ago: float, due_in_days: float, completed_days_ago: float | None = None
    ) -> None:
        RightsRequest.objects.create(
            kind="access",
            status=status,
            fingerprint=f"f{RightsRequest.objects.count()}",
            channel="phone",
            opened_by="test",
            received_at=now - timedelta(days=received_days_ago),
            due_at=now + timedelta(days=due_in_days),
            completed_at=None if completed_days_ago is None else now - timedelta(days=completed_days_ago),
        )

    make("received", 40, -2)  # overdue
    make("processing", 25, 3)  # due soon
    make("verified", 1, 29)
    make("completed", 20, 10, completed_days_ago=10)  # took 10 days
    make("completed", 30, 0, completed_days_ago=10)  # took 20 days

    summary = request_summary(now=now)

    assert (summary.open, summary.overdue, summary.due_soon) == (3, 1, 1)
    assert summary.open_by_kind == {"access": 3}
    assert summary.median_days == {"access": 15.0}


def test_the_dashboard_shows_the_last_verification_and_its_problems(dpo_en: Client, anna: str) -> None:
    dpo = dpo_en
    assert "No verification has run yet" in dpo.get("/admin/dashboard/").content.decode()

    with connection.cursor() as cursor:  # one of Anna's consent decisions flipped in the database
        cursor.execute(
            "UPDATE consent_consentstate SET status = CASE status WHEN 'granted' THEN 'withdrawn' ELSE 'granted' END"
            " WHERE id = (SELECT min(id) FROM consent_consentstate WHERE subject_id = %s)",
            [anna],
        )
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=io.StringIO(), stderr=io.StringIO())
    page = dpo.get("/admin/dashboard/").content.decode()

    assert "Last run: full" in page
    assert "1 problem</strong>" in page
    assert f"subject {anna}" in page
    assert "differs from its chain" in page


def test_undelivered_mails_leave_the_list_once_they_no_longer_matter(transactional_db: None) -> None:
    apply_catalogue(standard_catalogue())
    # given a double opt-in mail and a sign-in mail the mail server refused
    record("mia@example.org", "grant", "email", timezone.now())
    confirmation = Confirmation.objects.get()
    mail_undelivered_record(
        kind="confirmation",
        reference=str(confirmation.pk),
        error="SMTPRecipientsRefused 550",
        subject_id=confirmation.subject_id,
    )
    mail_undelivered_record(kind="signin", reference="keyed-hash-of-an-address", error="ConnectionRefusedError")
    assert undelivered_mails().by_kind == {"confirmation": 1, "signin": 1}

    # when the person confirms through another way (or the link expires), that mail no longer needs delivering
    Confirmation.objects.filter(pk=confirmation.pk).update(used_at=timezone.now())
    assert undelivered_mails().by_kind == {"signin": 1}

    # and a failed sign-in a month old is history
    UndeliveredMail.objects.update(last_failed_at=timezone.now() - timedelta(days=31))
    assert undelivered_mails().count == 0


def open_request(*, kind: str = "access", received_days_ago: float, due_in_days: float) -> None:
    now = timezone.now()
    RightsRequest.objects.create(
        kind=kind,
        status="received",
        fingerprint=f"f{RightsRequest.objects.count()}",
        channel="phone",
        opened_by="test",
        received_at=now - timedelta(days=received_days_ago),
        due_at=now + timedelta(days=due_in_days),
    )


def card(page: str, card_id: str) -> str:
    """The opening tag of a figure's card: its classes say how it is coloured."""
    match = re.search(rf'<div class="([^"]*)" id="{card_id}">', page)
    assert match is not None, card_id
    return match.group(1)


def test_a_figure_is_red_only_when_it_is_bad(dpo_en: Client) -> None:
    # given nothing overdue, nothing failing
    page = dpo_en.get("/admin/dashboard/").content.decode()

    for figure in ("figure-overdue", "figure-webhooks", "figure-mails"):
        assert "assent-ok" in card(page, figure), figure
        assert "assent-bad" not in card(page, figure), figure
    assert "none overdue" in page
    assert "assent-warn" not in card(page, "figure-due-soon")

    # when one request is past its deadline and one is due in three days
    open_request(received_days_ago=40, due_in_days=-2)
    open_request(received_days_ago=27, due_in_days=3)
    page = dpo_en.get("/admin/dashboard/").content.decode()

    # then the overdue figure turns red, the due-soon one amber
    assert "assent-bad" in card(page, "figure-overdue")
    assert "past their deadline" in page
    assert "assent-warn" in card(page, "figure-due-soon")
    assert "assent-bad" not in card(page, "figure-mails")


def test_purposes_and_channels_are_shown_by_their_names_in_the_staff_members_language(
    dpo: Client, dpo_en: Client, db: None
) -> None:
    document = standard_catalogue()
    document["purposes"][0]["name"] = {"de": "Unser Newsletter", "en": "Our newsletter"}
    next(c for c in document["channels"] if c["key"] == "sms")["name"] = {"de": "Kurznachricht", "en": "Text message"}
    apply_catalogue(document)
    record("a@example.org", "grant", "sms", timezone.now() - timedelta(days=1))

    english = dpo_en.get("/admin/dashboard/").content.decode()
    german = speaking(dpo, "de").get("/admin/dashboard/").content.decode()

    assert "Our newsletter: consent rate by week" in english
    assert "<td>Text message</td>" in english
    assert ">newsletter: consent rate" not in english  # never the key
    assert '"newsletter: consent rate' not in english
    assert "Unser Newsletter: Einwilligungsquote je Woche" in german
    assert "<td>Kurznachricht</td>" in german
    assert "Auf einen Blick" in german


def test_the_median_time_to_completion_reads_the_last_90_days_per_kind(dpo_en: Client) -> None:
    now = timezone.now()
    for kind, received, completed in (("access", 12, 2), ("access", 30, 10), ("erasure", 200, 100)):
        RightsRequest.objects.create(
            kind=kind,
            status="completed",
            fingerprint=f"m{RightsRequest.objects.count()}",
            channel="phone",
            opened_by="test",
            received_at=now - timedelta(days=received),
            due_at=now,
            completed_at=now - timedelta(days=completed),
        )

    summary = request_summary(now=now)
    page = dpo_en.get("/admin/dashboard/").content.decode()

    assert summary.window_days == 90
    assert summary.median_days == {"access": 15.0}  # the erasure completed 100 days ago is left out
    assert summary.completed_by_kind == {"access": 2}
    assert "<td>Access (Art. 15)</td><td>15.0</td><td>2</td>" in page
    assert "completed in the last 90 days" in page


def test_a_failing_mail_turns_its_figure_red_and_is_named_by_its_kind(dpo_en: Client) -> None:
    mail_undelivered_record(kind="signin", reference="keyed-hash-of-an-address", error="ConnectionRefusedError")

    page = dpo_en.get("/admin/dashboard/").content.decode()

    assert "assent-bad" in card(page, "figure-mails")
    assert "<td>portal sign-in link</td>" in page
    assert "1 portal sign-in link" in page
