"""The one world every cell of the access matrix runs against, built once through the real services and the API:
two people who use the portal (Anna, whose data is guarded, and Ben, another person), the objects behind every
route (requests in each state, a merge and a merge proposal, a send, a read, an objection), API clients for each
column of the API table, and staff for each column of the admin table. Every identifier Anna has is in
`anna_secrets`: a page shown to anyone but Anna must contain none of them."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.test import Client, TestCase, override_settings

from consent.admin.staff import DPO, SUPPORT, staff_groups_setup, staff_totp_device_create
from consent.clients import client_revoke
from consent.double_opt_in import confirmation_token
from consent.models import (
    AuditEntry,
    CatalogueRevision,
    Channel,
    Confirmation,
    ConsentEvent,
    ConsentState,
    DataCategory,
    LedgerHead,
    Notice,
    Objection,
    Purpose,
    ReadLog,
    Send,
    SendRecipient,
    Source,
    SourceCategory,
    WebhookDelivery,
)
from consent.send_jobs.services import send_job_run
from consent.webhooks.outbox import outbox_record
from consent.webhooks.subscriptions import subscription_create
from subjects.models import MergeAudit, RightsRequest, Subject
from subjects.portal.addresses import address_change_request
from subjects.rights.context import Handler
from subjects.rights.registry import handler_for
from tests.admin.conftest import PASSWORD, otp_login
from tests.api import Api
from tests.catalogue import standard_catalogue
from tests.factories import ALL_SCOPES, ApiClientFactory, apply_catalogue
from tests.portal.conftest import ask_for_link, browser, link_from_mail, sign_in
from tests.rights.helpers import drain

ANNA = "anna.access@example.de"
ANNA_NAME = "Annabell Zuckermann"  # unusual enough that no page shows it by chance
ANNA_PHONE = "+491715550142"
ANNA_CUSTOMER = "C-ANNA-7731"
BEN = "ben.access@example.de"
OTHER_PURPOSE = "offers"  # the purpose the "other purpose" API client is limited to; Anna's calls are for newsletter
# Staff passwords are hashed with a fast hasher: the matrix is about who may see what once signed in, and a
# million PBKDF2 rounds per account would cost seconds (the sign-in itself is tested in tests/admin).
FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Ids and sessions; `sessions` maps a role to the cookies of its signed-in browser."""

    anna: uuid.UUID
    ben: uuid.UUID
    anna_secrets: list[str]
    keys: dict[str, str] = field(default_factory=dict)  # API role -> key ("revoked", "all", "other_purpose")
    ids: dict[str, Any] = field(default_factory=dict)  # what a route's path parameters name
    sessions: dict[str, Any] = field(default_factory=dict)  # role -> cookies
    paths: dict[str, str] = field(default_factory=dict)  # ready-made paths (tokens in e-mails)
    _clients: dict[str, Client] = field(default_factory=dict)

    def browser(self, role: str) -> Client:
        """The role's browser with the cookies it had after signing in (none for anonymous), so a cell never sees
        what another cell's responses set. One client per role: each new test client loads the middleware again,
        WhiteNoise's scan of the static files included, at a quarter of a second each."""
        client = self._clients.get(role)
        if client is None:
            client = self._clients[role] = Client(HTTP_USER_AGENT="AccessMatrix/1.0", REMOTE_ADDR="203.0.113.50")
        client.cookies = copy.deepcopy(self.sessions[role]) if role in self.sessions else SimpleCookie()
        return client


def _post_record(api: Api, external_id: str, identifiers: dict[str, str], **extra: Any) -> Any:
    body = {
        "source": "pos",
        "external_id": external_id,
        "category": "purchases",
        "identifiers": identifiers,
        "occurred_at": "2026-11-20T10:00:00Z",
        "data": {"store": "Berlin"},
        **extra,
    }
    response = api.post("/api/v1/records", body)
    assert response.status_code in (200, 201, 202), response.content
    return response.json()


def _request(api: Api, kind: str, email: str, *, verified: bool = True, details: Any = None) -> str:
    body = {"kind": kind, "subject": {"email": email}, "channel": "callcenter", "verified": verified}
    if details is not None:
        body["details"] = details
    response = api.post("/api/v1/requests", body)
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def _failing(kind: str, part: str) -> Handler:
    def broken(context: Any) -> None:
        raise ValueError("a connected system is down")

    return broken if part.startswith("source:") else handler_for(kind, part)


def _people(api: Api, world_ids: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    anna = _post_record(
        api,
        "R-anna-contact",
        {"email": ANNA, "phone": ANNA_PHONE, "customer_number": ANNA_CUSTOMER},
        category="contact",
        data={"name": ANNA_NAME},
    )["subject"]
    _post_record(api, "R-anna-1", {"email": ANNA}, data={"total": "42.00"})
    ben = _post_record(api, "R-ben-contact", {"email": BEN}, category="contact", data={"name": "Ben Access"})["subject"]
    grant = {"purpose": "newsletter", "action": "grant", "notice_version": "2026-01", "source": "webshop"}
    for who in (ANNA, BEN):
        response = api.post("/api/v1/consents", {"subject": {"email": who}, "channel": "sms", **grant})
        assert response.status_code == 201, response.content
    # A double opt-in waiting for Anna (the /confirm/ page) and an objection (the admin's objection pages).
    pending = api.post("/api/v1/consents", {"subject": {"email": ANNA}, "channel": "email", **grant})
    assert pending.json()["state"] == "pending_confirmation", pending.content
    objection = {"subject": {"email": ANNA}, "purpose": "offers", "action": "object", "source": "webshop"}
    assert api.post("/api/v1/consents", objection).status_code == 201
    world_ids["confirmation"] = Confirmation.objects.filter(subject_id=anna).latest("created_at").pk
    world_ids["newsletter_grant"] = ConsentEvent.objects.get(subject_id=anna, action="grant", channel="sms").pk
    return uuid.UUID(anna), uuid.UUID(ben)


def _merges(api: Api, world_ids: dict[str, Any]) -> None:
    """A merge that happened (split from the subject's page) and one that waits for the DPO."""
    _post_record(api, "R-eve-1", {"email": "eve.access@example.de"})
    _post_record(api, "R-eve-2", {"loyalty_card": "L-EVE-1"})
    merged = _post_record(api, "R-eve-3", {"email": "eve.access@example.de", "loyalty_card": "L-EVE-1"})
    world_ids["merge_audit"] = MergeAudit.objects.get(survivor_id=merged["subject"]).pk
    world_ids["merge_survivor"] = merged["subject"]
    _post_record(api, "R-fay", {"email": "fay.access@example.de", "customer_number": "C-FAY"})
    _post_record(api, "R-gus", {"email": "gus.access@example.de", "customer_number": "C-GUS"})
    proposed = _post_record(api, "R-x", {"email": "fay.access@example.de", "customer_number": "C-GUS"})
    world_ids["merge_proposal"] = proposed["merge_proposal"]


def _requests(api: Api, world_ids: dict[str, Any]) -> None:
    """Rights requests in each state a step acts on. Anna's own is a finished copy with its export; the others
    belong to people who are not in the portal, so that an erasure or a restriction never changes Anna's pages."""
    for tag in ("carl", "dora", "hal"):
        _post_record(api, f"R-{tag}", {"email": f"{tag}.access@example.de"}, category="contact", data={"n": tag})
    world_ids["received"] = _request(api, "access", "carl.access@example.de", verified=False)
    erasure = _request(api, "erasure", "dora.access@example.de")
    drain(erasure)
    assert RightsRequest.objects.get(pk=erasure).status == "awaiting_approval"
    world_ids["awaiting"] = erasure
    restriction = _request(api, "restriction", "carl.access@example.de", details={"ground": "18(1)(a)"})
    drain(restriction)
    assert RightsRequest.objects.get(pk=restriction).status == "completed"
    world_ids["restriction"] = restriction
    failed = _request(api, "portability", "hal.access@example.de")
    drain(failed, handlers=_failing)
    assert RightsRequest.objects.get(pk=failed).status == "failed"
    world_ids["failed"] = failed
    copy_of_anna = _request(api, "access", ANNA)
    drain(copy_of_anna)
    assert RightsRequest.objects.get(pk=copy_of_anna).status == "completed"
    world_ids["anna_copy"] = copy_of_anna


def _api_clients(world: World) -> None:
    victim, _ = ApiClientFactory(name="access-victim", scopes=["consent:check"], purposes=[])
    world.ids["api_client"] = victim.pk
    revoked, key = ApiClientFactory(name="access-revoked", scopes=list(ALL_SCOPES), purposes=[])
    client_revoke(client=revoked)
    world.keys["revoked"] = key
    other, world.keys["other_purpose"] = ApiClientFactory(
        name="access-other-purpose", scopes=list(ALL_SCOPES), purposes=[OTHER_PURPOSE]
    )
    hook = subscription_create(client_id=other.pk, url="https://93.184.216.34/hooks/world", events=["*"])
    world.ids["webhook"] = hook.subscription.pk
    # A dead letter for the admin's pages and replay action: an event for that endpoint whose day of failed attempts
    # is not waited for here.
    outbox_record(type="subject.rectified", subject_id=world.anna, data={"subject": str(world.anna), "changed": {}})
    dead = WebhookDelivery.objects.filter(subscription_id=hook.subscription.pk).latest("pk")
    WebhookDelivery.objects.filter(pk=dead.pk).update(status=WebhookDelivery.Status.DEAD, attempts=9)
    world.ids["dead_letter"] = dead.pk


@override_settings(PASSWORD_HASHERS=FAST_HASHER)
def _staff(world: World) -> None:
    staff_groups_setup()
    users = {}
    for role, group in (("support", SUPPORT), ("dpo", DPO), ("nototp", DPO)):
        user: AbstractUser = get_user_model().objects.create_user(
            username=f"access-{role}", password=PASSWORD, is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        device = staff_totp_device_create(user=user)
        users[role] = user
        client = Client(REMOTE_ADDR="203.0.113.60")
        if role == "nototp":
            # A DPO who got past the password but never entered a code: signed in, not verified.
            client.force_login(user)
        else:
            assert otp_login(client, user, device).status_code == 302
        world.sessions[role] = client.cookies
        world.ids[f"{role}_user"] = user.pk
        world.ids[f"{role}_device"] = device.pk
    # One failed sign-in, so the lockout pages have a row to show (axes records it).
    Client(REMOTE_ADDR="198.51.100.7").post(
        "/admin/login/", {"username": "nobody-access", "password": "wrong", "otp_token": "000000"}
    )
    world.ids["axes_attempt"] = AccessAttempt.objects.latest("id").pk
    # Access and failure logs are switched off in settings; a row of each (axes' own tables, not Assent's) gives
    # their admin pages something to show, as they would where they are switched on.
    seen = {"user_agent": "matrix", "ip_address": "198.51.100.7", "username": "nobody-access", "http_accept": "*/*"}
    world.ids["axes_log"] = AccessLog.objects.create(path_info="/admin/login/", **seen).pk
    world.ids["axes_failure"] = AccessFailureLog.objects.create(path_info="/admin/login/", **seen).pk
    world.ids["group"] = Group.objects.get(name=SUPPORT).pk


def _portal(world: World, api: Api) -> None:
    """Anna and Ben signed in through the mailed link; a sign-in link of Anna's that nobody used yet; links to
    confirm a new address of Anna's, a code for a new phone number, a double opt-in and an unsubscribe."""
    world.sessions["person"] = sign_in(ANNA).cookies
    world.sessions["other"] = sign_in(BEN).cookies
    mail.outbox.clear()
    change = address_change_request(subject_id=world.anna, kind="email", value="anna.neu.access@example.de")
    token = mail.outbox[-1].body.split(f"/portal/address/{change}/")[1].split()[0]
    world.paths["address_link"] = f"/portal/address/{change}/{token}"
    address_change_request(subject_id=world.anna, kind="phone", value="+491715550199")
    world.paths["confirm"] = f"/confirm/{confirmation_token(world.ids['confirmation'])}"
    send = api.post(
        "/api/v1/sends",
        {"campaign": "access", "purpose": "newsletter", "channel": "sms", "recipients": [{"email": ANNA}]},
    )
    assert send.status_code == 201, send.content
    world.ids["send"] = send.json()["send"]
    world.paths["unsubscribe"] = "/u/" + send.json()["allowed"][0]["unsubscribe_url"].rsplit("/u/", 1)[1]
    job = api.http.post(
        "/api/v1/send-jobs?campaign=access&purpose=newsletter&channel=sms",
        b'{"email": "%s"}\n' % ANNA.encode(),
        content_type="application/x-ndjson",
        **api._headers(None),
    )
    assert job.status_code == 202, job.content
    world.ids["send_job"] = job.json()["id"]
    send_job_run(job_id=uuid.UUID(world.ids["send_job"]))  # the worker's part, in process: the job completes


def signin_link_of_anna() -> str:
    """A sign-in link mailed to Anna, asked for in a browser of its own. Pending sign-ins live in the cache, which
    every test starts empty (tests/conftest.py), so a cell asks for its own."""
    mail.outbox.clear()
    assert ask_for_link(browser(), ANNA).status_code == 302
    return link_from_mail(ANNA)


def _admin_objects(world: World) -> None:
    """One object of each model the admin shows (by primary key), for the change, delete and history pages."""
    ids = world.ids
    anna = world.anna
    ids["model"] = {
        "axes.accessattempt": ids["axes_attempt"],
        "axes.accesslog": ids["axes_log"],
        "axes.accessfailurelog": ids["axes_failure"],
        "auth.user": ids["support_user"],
        "auth.group": ids["group"],
        "otp_totp.totpdevice": ids["support_device"],
        "consent.auditentry": AuditEntry.objects.latest("pk").pk,
        "consent.channel": Channel.objects.get(key="sms").pk,
        "consent.datacategory": DataCategory.objects.get(key="contact").pk,
        "consent.source": Source.objects.get(key="pos").pk,
        "consent.sourcecategory": SourceCategory.objects.first().pk,  # type: ignore[union-attr]
        "consent.cataloguerevision": CatalogueRevision.objects.latest("pk").pk,
        "consent.apiclient": ids["api_client"],
        "consent.consentevent": ConsentEvent.objects.filter(subject_id=anna).first().pk,  # type: ignore[union-attr]
        "consent.ledgerhead": LedgerHead.objects.get(subject_id=anna).pk,
        "consent.consentstate": ConsentState.objects.filter(subject_id=anna).first().pk,  # type: ignore[union-attr]
        "consent.objection": Objection.objects.get(subject_id=anna).pk,
        "consent.readlog": ReadLog.objects.latest("pk").pk,
        "consent.purpose": Purpose.objects.get(key="newsletter").pk,
        "consent.notice": Notice.objects.filter(purpose__key="newsletter").first().pk,  # type: ignore[union-attr]
        "consent.send": ids["send"],
        "consent.sendrecipient": SendRecipient.objects.get(send_id=ids["send"]).pk,
        "consent.webhooksubscription": ids["webhook"],
        "consent.webhookdelivery": ids["dead_letter"],
        "consent.sendjob": ids["send_job"],
        "subjects.mergeaudit": ids["merge_audit"],
        "subjects.mergeproposal": ids["merge_proposal"],
        "subjects.rightsrequest": ids["anna_copy"],
        "subjects.subject": anna,
    }
    ids["content_type"] = ContentType.objects.get_for_model(Subject).pk
    assert Send.objects.filter(pk=ids["send"]).exists()


def world_build() -> World:
    """Runs inside the matrix's outer transaction (tests/access/conftest.py): nothing here outlives the run."""
    apply_catalogue(standard_catalogue(one_per_person=["customer_number"]))
    _, setup_key = ApiClientFactory(name="access-setup", scopes=list(ALL_SCOPES), purposes=[])
    api = Api(setup_key)
    ids: dict[str, Any] = {}
    with TestCase.captureOnCommitCallbacks(execute=False):
        anna, ben = _people(api, ids)
        world = World(anna=anna, ben=ben, anna_secrets=[], ids=ids)
        _merges(api, ids)
        _requests(api, ids)
        _api_clients(world)
        _staff(world)
        _portal(world, api)
        profile = api.get(f"/api/v1/subjects/{anna}/profile?purpose=newsletter")
        assert profile.status_code in (200, 403), profile.content
    _admin_objects(world)
    world.anna_secrets = [
        ANNA,
        ANNA_NAME,
        ANNA_PHONE,
        ANNA_CUSTOMER,
        "anna.neu.access@example.de",
        str(anna),
        str(ids["anna_copy"]),
    ]
    return world
