"""The admin's forms fuzzed with hypothesis through Django's test client, as a DPO signed in with a verified OTP
device: every add form, the change form of an existing object of every model, every changelist's search and action
form, and the sign-in form itself. Any subset of the fields, any text, any bytes, megabytes: always a page the
DPO can read (or a redirect), never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from hypothesis import given

from consent.admin.staff import DPO, staff_groups_setup, staff_totp_device_create
from tests.admin.conftest import PASSWORD, otp_login
from tests.factories import ApiClientFactory, ConsentFactory, customer
from tests.fuzz.budget import COUNTS, FORM_EXAMPLES, STATUSES, fuzz_settings
from tests.fuzz.forms import FORM, assert_readable, form_of, hostile_form

MODELS = sorted(f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry)


@pytest.fixture
def dpo(catalogue: dict[str, Any]) -> Client:
    """A DPO signed in through the OTP login form, with some data on every page: a customer, a consent, a client."""
    staff_groups_setup()
    user = get_user_model().objects.create_user(
        username=f"dpo-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=DPO))
    client = Client()
    assert otp_login(client, user, staff_totp_device_create(user=user)).status_code == 302
    customer()
    ConsentFactory(email="bo@example.org")
    ApiClientFactory(name="shop", scopes=["consent:check"])
    return client


def fuzz_page(client: Client, page_path: str) -> bool:
    """Fuzzes the page's main POST form; False when a DPO has no such form there."""
    page = client.get(page_path)
    if page.status_code != 200:
        return False
    form = form_of(page.content.decode())
    if not form.fields:
        return False
    path = form.action or page_path

    @fuzz_settings(FORM_EXAMPLES)
    @given(body=hostile_form(form))
    def post(body: bytes) -> None:
        response = client.post(path, body, content_type=FORM)
        COUNTS["admin"] += 1
        STATUSES[response.status_code] += 1
        assert_readable(response, f"POST {path} {body[:200]!r}")

    post()
    return True


def admin_url(model: str, view: str, *args: Any) -> str:
    app_label, model_name = model.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def first_of(model: str) -> Any:
    model_class = next(m for m in admin.site._registry if m._meta.label_lower == model)
    return model_class._default_manager.order_by("pk").first()


@pytest.mark.parametrize("view", ["add", "change", "changelist"])
def test_every_admin_form_answers_any_input_with_a_readable_page(dpo: Client, view: str) -> None:
    fuzzed = []
    for model in MODELS:
        if view == "change":
            obj = first_of(model)
            path = admin_url(model, view, obj.pk) if obj is not None else None
        else:
            path = admin_url(model, view)
        if path is not None and fuzz_page(dpo, path):
            fuzzed.append(model)
    assert fuzzed, f"no {view} form found to fuzz"
    print(f"{view} forms fuzzed: {', '.join(fuzzed)}")


def test_the_sign_in_form_answers_any_input_with_a_readable_page(catalogue: dict[str, Any]) -> None:
    assert fuzz_page(Client(), "/admin/login/")


# What the full run found, kept as plain regression tests.
@pytest.mark.parametrize("selected", ["", "abc", "1e3", "\x00"])
@pytest.mark.parametrize("model", ["auth.group", "consent.apiclient", "subjects.rightsrequest"])
def test_a_tampered_selection_in_a_changelist_action_is_a_readable_answer(
    dpo: Client, model: str, selected: str
) -> None:
    response = dpo.post(
        admin_url(model, "changelist"), {"action": "delete_selected", "index": "0", "_selected_action": selected}
    )
    assert_readable(response, f"{model} {selected!r}")


def test_a_page_the_dpo_may_not_see_answers_a_readable_403(dpo: Client) -> None:
    """The fuzzer met Django's bare "403 Forbidden" on a change form the DPO may not save that way; the lockout's
    own records are another page a DPO may not open."""
    response = dpo.get("/admin/axes/accessattempt/")
    assert response.status_code == 403
    assert_readable(response, "a DPO at the lockout records")
