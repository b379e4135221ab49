"""What the soak found after an erasure: a client that kept an erased person's subject id and wrote with it got a
500 (the data key is destroyed, the chain archived). A consent write naming that id is now 409 `subject_erased`,
and an objection request naming it runs over nothing, as for a person nobody knows; nothing lands on the erased
subject."""

from __future__ import annotations

import pytest

from consent.models import ConsentEvent, ConsentState
from tests.api import Api, assert_problem
from tests.rights.helpers import drain

REQUESTS = "/api/v1/requests"
ANNA = {"email": "anna@example.de"}
pytestmark = pytest.mark.django_db


def erased_subject(api: Api) -> str:
    """A person with an SMS newsletter consent, then erased; returns their (old) subject id."""
    granted = api.post(
        "/api/v1/consents",
        {
            "subject": ANNA,
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": "2026-01",
            "source": "webshop",
        },
    )
    assert granted.status_code == 201, granted.content
    opened = api.post(REQUESTS, {"kind": "erasure", "subject": ANNA, "channel": "portal", "verified": True}).json()
    assert api.post(f"{REQUESTS}/{opened['id']}/approve", {}).status_code == 202
    assert drain(opened["id"]).status == "completed"
    subject: str = granted.json()["subject"]
    return subject


def test_a_consent_write_naming_an_erased_subjects_id_is_a_409_not_a_500(api: Api) -> None:
    subject = erased_subject(api)

    response = api.post(
        "/api/v1/consents",
        {"subject": {"id": subject}, "purpose": "offers", "action": "object", "source": "webshop"},
    )

    assert_problem(response, 409, "subject_erased", "subject.id")
    assert not ConsentEvent.objects.filter(subject_id=subject).exists()
    assert not ConsentState.objects.filter(subject_id=subject).exists()


def test_an_objection_naming_an_erased_subjects_id_runs_over_nothing(api: Api) -> None:
    subject = erased_subject(api)

    response = api.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"id": subject},
            "channel": "desk",
            "details": {"scope": "direct_marketing"},
        },
    )

    assert response.status_code == 202, response.content
    assert drain(response.json()["id"]).status == "completed"
    assert not ConsentEvent.objects.filter(subject_id=subject).exists()
