"""The rights-request queue: due dates and colours, filters, and each step through the rights engine's services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from consent.models import AuditEntry
from subjects.models import RightsRequest, RightsRequestPart

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}  # the admin follows the staff member's language; German by default


def open_request(client: Client, kind: str = "access", **extra: Any) -> Any:
    data = {
        "kind": kind,
        "identifier_kind": "email",
        "identifier": "anna.becker@example.org",
        "channel": "phone",
        "details": "{}",
        **extra,
    }
    return client.post("/admin/subjects/rightsrequest/add/", data)


def make(status: str, *, kind: str = "access", due_in: timedelta = timedelta(days=20), **fields: Any) -> RightsRequest:
    now = timezone.now()
    return RightsRequest.objects.create(
        kind=kind,
        status=status,
        fingerprint=f"fp-{RightsRequest.objects.count()}-{status}",
        channel="letter",
        opened_by="test",
        received_at=now - timedelta(days=5),
        due_at=now + due_in,
        **fields,
    )


def step(client: Client, request: RightsRequest, name: str, **data: Any) -> Any:
    return client.post(f"/admin/subjects/rightsrequest/{request.pk}/step/{name}/", data)


def test_support_opens_a_request_for_a_caller_and_verifies_it(support: Client, anna: str) -> None:
    response = open_request(support)

    assert response.status_code == 302, response.content.decode()[:3000]
    request = RightsRequest.objects.get()
    assert (request.kind, request.status, str(request.subject_id)) == ("access", "received", anna)
    assert request.opened_by == f"staff:{support.user.get_username()}"  # type: ignore[attr-defined]

    verified = step(support, request, "verify")

    assert verified.status_code == 302
    request.refresh_from_db()
    assert request.status == "processing"
    assert request.verified_by == f"staff:{support.user.get_username()}"  # type: ignore[attr-defined]
    assert request.parts.exists()
    assert AuditEntry.objects.filter(action="action", detail="verify", object_id=str(request.pk)).exists()
    assert AuditEntry.objects.filter(action="add", object_type="subjects.rightsrequest").exists()


def test_an_identical_open_request_is_refused_with_its_id(support: Client, anna: str) -> None:
    open_request(support)
    response = open_request(support)

    assert response.status_code == 200
    existing = RightsRequest.objects.get()
    assert str(existing.pk) in response.content.decode()


def test_support_cannot_approve_reject_extend_lift_or_retry(support: Client, anna: str) -> None:
    request = make("awaiting_approval", kind="erasure")

    for name in ("approve", "reject", "extend", "lift", "retry"):
        assert step(support, request, name, reason="x", months="1").status_code == 403, name
    page = support.get(f"/admin/subjects/rightsrequest/{request.pk}/change/", **EN).content.decode()
    assert "Approve the erasure" not in page
    request.refresh_from_db()
    assert request.status == "awaiting_approval"


def test_dpo_approves_an_erasure_after_verification(dpo: Client, anna: str) -> None:
    open_request(dpo, kind="erasure", verified="on")
    request = RightsRequest.objects.get()
    assert request.status == "awaiting_approval"

    page = dpo.get(f"/admin/subjects/rightsrequest/{request.pk}/change/", **EN).content.decode()
    response = step(dpo, request, "approve", plan_seen="1")

    assert "Approve the erasure" in page
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "processing"
    assert request.approved_by == f"staff:{dpo.user.get_username()}"  # type: ignore[attr-defined]


def test_dpo_rejects_with_a_reason_and_not_without(dpo: Client, anna: str) -> None:
    request = make("received")

    refused = step(dpo, request, "reject", reason="   ")
    request.refresh_from_db()
    assert refused.status_code == 302
    assert request.status == "received"

    step(dpo, request, "reject", reason="Manifestly unfounded: the fifth identical request this week.")

    request.refresh_from_db()
    assert request.status == "rejected"
    assert request.rejection_reason.startswith("Manifestly unfounded")
    assert "right_to_complain" in request.result


def test_dpo_extends_with_a_reason(dpo: Client, anna: str) -> None:
    request = make("processing")

    step(dpo, request, "extend", months="2", reason="Records from twelve stores must be collected.")

    request.refresh_from_db()
    assert request.extended_until is not None
    assert request.extended_until > request.due_at
    assert request.extension_reason == "Records from twelve stores must be collected."
    assert "(extended)" in dpo.get("/admin/subjects/rightsrequest/", **EN).content.decode()


def test_dpo_lifts_a_restriction(dpo: Client, anna: str) -> None:
    request = make("completed", kind="restriction", subject_id=anna, completed_at=timezone.now())

    step(dpo, request, "lift")

    request.refresh_from_db()
    assert request.lift_requested_at is not None


def test_dpo_retries_the_failed_parts_from_the_list(dpo: Client, anna: str) -> None:
    request = make("failed")
    part = RightsRequestPart.objects.create(request=request, name="profile", status="failed", error="Timeout")

    response = dpo.post(
        "/admin/subjects/rightsrequest/", {"action": "retry_selected", "_selected_action": [str(request.pk)]}
    )

    assert response.status_code == 302
    request.refresh_from_db()
    part.refresh_from_db()
    assert request.status == "processing"
    assert (part.status, part.error) == ("pending", "")


def test_a_step_the_state_does_not_allow_is_a_message_not_an_error(dpo: Client, anna: str) -> None:
    request = make("completed", completed_at=timezone.now())

    response = dpo.post(f"/admin/subjects/rightsrequest/{request.pk}/step/approve/", follow=True)

    assert response.status_code == 200
    assert "not awaiting_approval" in response.content.decode()


def test_the_queue_colours_overdue_and_soon_due_requests_and_filters_them(dpo: Client, catalogue: Any) -> None:
    overdue = make("received", due_in=timedelta(days=-3))
    soon = make("verified", due_in=timedelta(days=3))
    later = make("processing", due_in=timedelta(days=25))
    done = make("completed", due_in=timedelta(days=-10), completed_at=timezone.now())

    page = dpo.get("/admin/subjects/rightsrequest/").content.decode()

    assert page.count("assent-due-overdue") == 1
    assert page.count("assent-due-soon") == 1

    def listed(query: str) -> set[str]:
        return {str(r.pk) for r in dpo.get(f"/admin/subjects/rightsrequest/?{query}").context["cl"].result_list}

    assert listed("deadline=overdue") == {str(overdue.pk)}
    assert listed("deadline=soon") == {str(soon.pk)}
    assert listed("open=yes") == {str(overdue.pk), str(soon.pk), str(later.pk)}
    assert listed("status__exact=completed") == {str(done.pk)}
    assert listed("kind__exact=erasure") == set()
    ordered = [str(r.pk) for r in dpo.get("/admin/subjects/rightsrequest/?open=yes").context["cl"].result_list]
    assert ordered == [str(overdue.pk), str(soon.pk), str(later.pk)]


def test_the_detail_page_shows_parts_errors_and_history(dpo: Client, anna: str) -> None:
    open_request(dpo, verified="on")
    request = RightsRequest.objects.get()
    RightsRequestPart.objects.filter(request=request, name="profile").update(status="failed", error="ValueError: x")

    page = dpo.get(f"/admin/subjects/rightsrequest/{request.pk}/change/", **EN).content.decode()

    assert 'id="request-parts"' in page
    assert "ValueError: x" in page
    assert "Received" in page  # the history's events and statuses by their labels
    assert "Processing" in page
    assert "Failed" in page  # the part's status
    assert f"staff:{dpo.user.get_username()}" in page  # type: ignore[attr-defined]
