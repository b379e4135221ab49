"""How each cell's request is made: the concrete path for a route (its path parameters filled from the world) and,
for the API, a valid body for a caller with the right scope. The expected answers are not here: they are in the
tables of test_access_matrix.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from config.ops import heartbeat_write, readiness_forget
from consent.models import (
    ApiClient,
    Channel,
    DataCategory,
    Notice,
    Purpose,
    Source,
    SourceCategory,
    WebhookDelivery,
    WebhookSubscription,
)
from consent.send_jobs.services import send_job_run
from subjects.models import MergeAudit, MergeProposal, RequestNote, RightsRequest
from subjects.rights.exports import export_url
from tests.access.routes import ACTION
from tests.access.world import ANNA, World, signin_link_of_anna

ANNA_REF = {"email": ANNA}


# ---------------------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------------------
def _record(external_id: str) -> dict[str, Any]:
    return {
        "source": "pos",
        "external_id": external_id,
        "category": "purchases",
        "identifiers": ANNA_REF,
        "occurred_at": "2026-11-21T10:00:00Z",
        "data": {"store": "Hamburg"},
    }


def _export_path(world: World) -> str:
    url = urlsplit(export_url(request_id=world.ids["anna_copy"]))
    return f"{url.path}?{url.query}"


# route -> (path, JSON body or None); the body is what a caller with the right scope sends to succeed.
API_CALLS: dict[str, Callable[[World], tuple[str, Any]]] = {
    "api/schema/": lambda w: ("/api/schema/", None),
    "api/docs/": lambda w: ("/api/docs/", None),
    "^api/": lambda w: ("/api/v2/consents", None),
    "api/v1/consents": lambda w: (
        "/api/v1/consents",
        {"subject": ANNA_REF, "purpose": "newsletter", "channel": "sms", "action": "withdraw", "source": "webshop"},
    ),
    "api/v1/consents/check": lambda w: (
        "/api/v1/consents/check",
        {"subject": ANNA_REF, "purpose": "newsletter", "channel": "sms"},
    ),
    "api/v1/consents/check-bulk": lambda w: (
        "/api/v1/consents/check-bulk",
        {"purpose": "newsletter", "channel": "sms", "subjects": [ANNA_REF, {"email": "nobody@example.de"}]},
    ),
    "api/v1/consents/events/<uuid:event_id>/receipt": lambda w: (
        f"/api/v1/consents/events/{w.ids['newsletter_grant']}/receipt",
        None,
    ),
    "api/v1/subjects/<uuid:subject_id>/consents": lambda w: (f"/api/v1/subjects/{w.anna}/consents", None),
    "api/v1/subjects/<uuid:subject_id>/consents/history": lambda w: (
        f"/api/v1/subjects/{w.anna}/consents/history",
        None,
    ),
    "api/v1/subjects/<uuid:subject_id>/profile": lambda w: (
        f"/api/v1/subjects/{w.anna}/profile?purpose=order-updates",
        None,
    ),
    "api/v1/sends": lambda w: (
        "/api/v1/sends",
        {"campaign": "matrix", "purpose": "newsletter", "channel": "sms", "recipients": [ANNA_REF]},
    ),
    "api/v1/send-jobs": lambda w: (
        "/api/v1/send-jobs?campaign=matrix&purpose=newsletter&channel=sms",
        NdJson(json.dumps(ANNA_REF).encode() + b"\n"),
    ),
    "api/v1/send-jobs/<uuid:job_id>": lambda w: (f"/api/v1/send-jobs/{w.ids['send_job']}", None),
    "api/v1/send-jobs/<uuid:job_id>/result": lambda w: (f"/api/v1/send-jobs/{w.ids['send_job']}/result", None),
    "api/v1/records": lambda w: ("/api/v1/records", _record("R-matrix")),
    "api/v1/records/batch": lambda w: ("/api/v1/records/batch", {"records": [_record("R-matrix-batch")]}),
    "api/v1/merge-proposals/<uuid:proposal_id>": lambda w: (
        f"/api/v1/merge-proposals/{w.ids['merge_proposal']}",
        None,
    ),
    "api/v1/requests": lambda w: (
        "/api/v1/requests",
        {"kind": "portability", "subject": ANNA_REF, "channel": "callcenter", "verified": True},
    ),
    "api/v1/requests/<uuid:request_id>": lambda w: (f"/api/v1/requests/{w.ids['anna_copy']}", None),
    "api/v1/requests/<uuid:request_id>/verify": lambda w: (f"/api/v1/requests/{w.ids['received']}/verify", {}),
    "api/v1/requests/<uuid:request_id>/approve": lambda w: (f"/api/v1/requests/{w.ids['awaiting']}/approve", {}),
    "api/v1/requests/<uuid:request_id>/lift": lambda w: (f"/api/v1/requests/{w.ids['restriction']}/lift", {}),
    "api/v1/requests/<uuid:request_id>/export": lambda w: (_export_path(w), None),
    "api/v1/requests/<uuid:request_id>/parts/<str:part>/result": lambda w: (
        f"/api/v1/requests/{w.ids['anna_copy']}/parts/connector:shop/result",
        {"data": {}},
    ),
    "api/v1/webhooks": lambda w: ("/api/v1/webhooks", {"url": "https://93.184.216.34/hooks/matrix", "events": ["*"]}),
    "api/v1/webhooks/<uuid:webhook_id>": lambda w: (f"/api/v1/webhooks/{w.ids['webhook']}", None),
}


_API_CLIENT: list[APIClient] = []  # one for every cell: a new client loads the middleware again


@dataclass(frozen=True)
class NdJson:
    """A body that is not JSON: lines of subject references (a send job)."""

    data: bytes


def _job_of(world: World, http: APIClient, headers: dict[str, str]) -> str:
    """A send job of the caller's own, completed (jobs are seen by their client only); when the caller may not create
    one, the world's, which is not theirs."""
    path, body = API_CALLS["api/v1/send-jobs"](world)
    created = http.post(path, body.data, content_type="application/x-ndjson", **headers)
    if created.status_code != 202:
        return str(world.ids["send_job"])
    send_job_run(job_id=uuid.UUID(created.json()["id"]))
    return str(created.json()["id"])


def api_call(world: World, route: str, method: str, key: str | None, address: str) -> Any:
    path, body = API_CALLS[route](world)
    if not _API_CLIENT:
        _API_CLIENT.append(APIClient())
    http = _API_CLIENT[0]
    http.cookies = SimpleCookie()
    headers = {"REMOTE_ADDR": address}
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    if route.startswith("api/v1/send-jobs/"):  # the caller's own job, when the caller may have one
        path = path.replace(str(world.ids["send_job"]), _job_of(world, http, headers))
    if method == "GET":
        return http.get(path, **headers)
    if isinstance(body, NdJson):
        return http.generic(method, path, body.data, content_type="application/x-ndjson", **headers)
    return http.generic(method, path, json.dumps(body or {}), content_type="application/json", **headers)


# ---------------------------------------------------------------------------------------------------------
# Portal
# ---------------------------------------------------------------------------------------------------------
PORTAL_PATHS: dict[str, Callable[[World], str]] = {
    "confirm/<str:token>": lambda w: w.paths["confirm"],
    "u/<path:token>": lambda w: w.paths["unsubscribe"],
    "portal/signin/<str:token>": lambda w: signin_link_of_anna(),
    "portal/address/<uuid:change_id>/<str:token>": lambda w: w.paths["address_link"],
    "portal/rights/<str:request_id>": lambda w: f"/portal/rights/{w.ids['anna_copy']}",
    "portal/rights/<str:request_id>/export": lambda w: f"/portal/rights/{w.ids['anna_copy']}/export",
    "portal/history/<uuid:event_id>/receipt": lambda w: f"/portal/history/{w.ids['newsletter_grant']}/receipt",
    "api/v1/requests/<uuid:request_id>/export": _export_path,  # the API's link, opened in a portal session
}
PORTAL_FORMS: dict[str, dict[str, str]] = {"portal/rights/copy": {"kind": "portability"}}


def portal_call(world: World, route: str, method: str, role: str) -> Any:
    path = PORTAL_PATHS[route](world) if route in PORTAL_PATHS else f"/{route}"
    client = world.browser(role)
    if method == "POST":
        return client.post(path, PORTAL_FORMS.get(route, {}))
    return client.get(path)


# ---------------------------------------------------------------------------------------------------------
# Admin
# ---------------------------------------------------------------------------------------------------------
_MODEL = re.compile(r"^admin/([a-z_]+)/([a-z]+)/")
STEP_REQUEST = {  # the request each step of the queue acts on: one in the state the step needs
    "verify": "received",
    "approve": "awaiting",
    "reject": "received",
    "extend": "received",
    "lift": "restriction",
    "retry": "failed",
}


def _model_key(route: str) -> str:
    match = _MODEL.match(route)
    assert match, route
    return f"{match.group(1)}.{match.group(2)}"


def admin_path(world: World, route: str, variant: str = "") -> str:
    """The concrete path for an admin route; `variant` names the step or decision of a route that takes one."""
    ids = world.ids
    special = {
        "admin/r/<path:content_type_id>/<path:object_id>/": f"/admin/r/{ids['content_type']}/{world.anna}/",
        "admin/^(?P<app_label>axes|auth|otp_totp|consent|subjects)/$": "/admin/subjects/",
        "admin/(?P<url>.*)$": "/admin/no-such-page/",
        "admin/records-of-processing.<str:fmt>": f"/admin/records-of-processing.{variant or 'csv'}",
        "admin/subjects/rightsrequest/<uuid:object_id>/step/<str:step>/": (
            f"/admin/subjects/rightsrequest/{ids.get(STEP_REQUEST.get(variant, ''), '')}/step/{variant}/"
        ),
        ASSIGN: f"/admin/subjects/rightsrequest/{ids['received']}/assign/",
        NOTE: f"/admin/subjects/rightsrequest/{ids['received']}/note/",
        "admin/subjects/mergeproposal/<path:object_id>/decide/<str:decision>/": (
            f"/admin/subjects/mergeproposal/{ids['merge_proposal']}/decide/{variant}/"
        ),
        "admin/subjects/subject/<uuid:object_id>/consent-record.jsonld": (
            f"/admin/subjects/subject/{world.anna}/consent-record.jsonld"
        ),
        "admin/subjects/subject/<path:object_id>/split/<int:audit_id>/": (
            f"/admin/subjects/subject/{ids['merge_survivor']}/split/{ids['merge_audit']}/"
        ),
        "admin/otp_totp/totpdevice/<int:pk>/config/": f"/admin/otp_totp/totpdevice/{ids['support_device']}/config/",
        "admin/otp_totp/totpdevice/<int:pk>/qrcode/": f"/admin/otp_totp/totpdevice/{ids['support_device']}/qrcode/",
        "admin/auth/user/<id>/password/": f"/admin/auth/user/{ids['support_user']}/password/",
    }
    if route in special:
        return special[route]
    if "<path:object_id>" in route:
        return "/" + route.replace("<path:object_id>", str(ids["model"][_model_key(route)]))
    assert "<" not in route, f"no way to fill the path parameters of {route}"
    return "/" + route


def admin_call(world: World, route: str, method: str, role: str, variant: str = "") -> Any:
    client: Client = world.browser(role)
    path = admin_path(world, route, variant)
    if method == "POST":
        # One body for every button: each reads its own fields (a step's reason, an assignee, a note's text).
        body = {"reason": "matrix", "months": "1", "plan_seen": "1", "text": "matrix"}
        return client.post(path, {**body, "assignee": str(world.ids["support_user"])})
    return client.get(path)


# ---------------------------------------------------------------------------------------------------------
# Admin actions: which object each action is run on, and how to see whether it ran
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionTarget:
    pk: Callable[[World], Any]
    done: Callable[[World], bool]  # true once the action's effect is there


def _gone(model: Any, pk: Callable[[World], Any]) -> ActionTarget:
    return ActionTarget(pk, lambda w: not model.objects.filter(pk=pk(w)).exists())


def _status(step: str, status: str) -> ActionTarget:
    return ActionTarget(
        lambda w: w.ids[STEP_REQUEST[step]],
        lambda w: RightsRequest.objects.get(pk=w.ids[STEP_REQUEST[step]]).status == status,
    )


def _model_pk(key: str) -> Callable[[World], Any]:
    return lambda w: w.ids["model"][key]


ACTION_TARGETS: dict[str, ActionTarget] = {
    f"admin/consent/apiclient/{ACTION}revoke_selected": ActionTarget(
        lambda w: w.ids["api_client"],
        lambda w: ApiClient.objects.get(pk=w.ids["api_client"]).revoked_at is not None,
    ),
    f"admin/consent/webhooksubscription/{ACTION}end_selected": ActionTarget(
        lambda w: w.ids["webhook"],
        lambda w: WebhookSubscription.objects.get(pk=w.ids["webhook"]).ended_at is not None,
    ),
    f"admin/consent/webhooksubscription/{ACTION}replay_dead_selected": ActionTarget(
        lambda w: w.ids["webhook"],
        lambda w: WebhookDelivery.objects.get(pk=w.ids["dead_letter"]).status == "pending",
    ),
    f"admin/consent/webhooksubscription/{ACTION}delete_selected": _gone(
        WebhookSubscription, lambda w: w.ids["webhook"]
    ),
    f"admin/consent/webhookdelivery/{ACTION}replay_selected": ActionTarget(
        lambda w: w.ids["dead_letter"],
        lambda w: WebhookDelivery.objects.get(pk=w.ids["dead_letter"]).status == "pending",
    ),
    f"admin/consent/webhookdelivery/{ACTION}delete_selected": _gone(WebhookDelivery, lambda w: w.ids["dead_letter"]),
    f"admin/subjects/rightsrequest/{ACTION}verify_selected": _status("verify", "processing"),
    f"admin/subjects/rightsrequest/{ACTION}approve_selected": _status("approve", "processing"),
    f"admin/subjects/rightsrequest/{ACTION}retry_selected": _status("retry", "processing"),
    f"admin/subjects/rightsrequest/{ACTION}delete_selected": _gone(RightsRequest, lambda w: w.ids["anna_copy"]),
    f"admin/auth/user/{ACTION}delete_selected": _gone(get_user_model(), lambda w: w.ids["support_user"]),
    f"admin/auth/group/{ACTION}delete_selected": _gone(Group, lambda w: w.ids["group"]),
    f"admin/otp_totp/totpdevice/{ACTION}delete_selected": _gone(TOTPDevice, lambda w: w.ids["support_device"]),
    f"admin/consent/apiclient/{ACTION}delete_selected": _gone(ApiClient, lambda w: w.ids["api_client"]),
    f"admin/consent/channel/{ACTION}delete_selected": _gone(Channel, _model_pk("consent.channel")),
    f"admin/consent/datacategory/{ACTION}delete_selected": _gone(DataCategory, _model_pk("consent.datacategory")),
    f"admin/consent/source/{ACTION}delete_selected": _gone(Source, _model_pk("consent.source")),
    f"admin/consent/sourcecategory/{ACTION}delete_selected": _gone(SourceCategory, _model_pk("consent.sourcecategory")),
    f"admin/consent/purpose/{ACTION}delete_selected": _gone(Purpose, _model_pk("consent.purpose")),
    f"admin/consent/notice/{ACTION}delete_selected": _gone(Notice, _model_pk("consent.notice")),
}


for _model in (AccessAttempt, AccessLog, AccessFailureLog):
    _key = f"axes.{_model._meta.model_name}"
    ACTION_TARGETS[f"admin/axes/{_model._meta.model_name}/{ACTION}delete_selected"] = _gone(_model, _model_pk(_key))
# axes' own clean-up deletes expired attempts only; the world's attempt is fresh, so even a permitted run leaves it.
ACTION_TARGETS[f"admin/axes/accessattempt/{ACTION}cleanup_expired_attempts"] = _gone(
    AccessAttempt, _model_pk("axes.accessattempt")
)


# The admin's buttons with views of their own (route, variant) -> whether their effect is there. A GET never has it.
STEP = "admin/subjects/rightsrequest/<uuid:object_id>/step/<str:step>/"
DECIDE = "admin/subjects/mergeproposal/<path:object_id>/decide/<str:decision>/"
SPLIT = "admin/subjects/subject/<path:object_id>/split/<int:audit_id>/"
REVOKE = "admin/consent/apiclient/<path:object_id>/revoke/"
ASSIGN = "admin/subjects/rightsrequest/<uuid:object_id>/assign/"
NOTE = "admin/subjects/rightsrequest/<uuid:object_id>/note/"


def _request_now(world: World, step: str) -> RightsRequest:
    return RightsRequest.objects.get(pk=world.ids[STEP_REQUEST[step]])


def _proposal_status(world: World) -> str:
    return str(MergeProposal.objects.get(pk=world.ids["merge_proposal"]).status)


BUTTON_EFFECTS: dict[tuple[str, str], Callable[[World], bool]] = {
    (REVOKE, ""): (lambda w: ApiClient.objects.get(pk=w.ids["model"]["consent.apiclient"]).revoked_at is not None),
    (STEP, "verify"): lambda w: _request_now(w, "verify").status != "received",
    (STEP, "approve"): lambda w: _request_now(w, "approve").status != "awaiting_approval",
    (STEP, "reject"): lambda w: _request_now(w, "reject").status == "rejected",
    (STEP, "extend"): lambda w: _request_now(w, "extend").extended_until is not None,
    (STEP, "lift"): lambda w: _request_now(w, "lift").lift_requested_at is not None,
    (STEP, "retry"): lambda w: _request_now(w, "retry").status != "failed",
    (DECIDE, "approve"): lambda w: _proposal_status(w) == "approved",
    (DECIDE, "reject"): lambda w: _proposal_status(w) == "rejected",
    (SPLIT, ""): (lambda w: MergeAudit.objects.get(pk=w.ids["merge_audit"]).split_at is not None),
    (ASSIGN, ""): lambda w: RightsRequest.objects.get(pk=w.ids["received"]).assigned_to_id is not None,
    (NOTE, ""): lambda w: RequestNote.objects.filter(request_id=w.ids["received"]).exists(),
}


def action_call(world: World, key: str, role: str) -> Any:
    """POST the action from its changelist, as the admin's action bar does, confirming at once where Django would
    ask first (delete_selected's `post=yes`)."""
    changelist, name = key.split(ACTION)
    target = ACTION_TARGETS[key]
    client = world.browser(role)
    return client.post(
        f"/{changelist}",
        {"action": name, "_selected_action": [str(target.pk(world))], "index": "0", "post": "yes", "plan_seen": "1"},
    )


# ---------------------------------------------------------------------------------------------------------
# Operations: the probes and /metrics
# ---------------------------------------------------------------------------------------------------------
METRICS_TOKEN = "matrix-metrics-token"


def ops_call(world: World, route: str, method: str, role: str) -> Any:
    heartbeat_write(force=True)  # a worker has beaten: the world is ready
    readiness_forget()
    headers = {
        "anonymous": {},
        "api_key": {"HTTP_AUTHORIZATION": f"Bearer {world.keys['other_purpose']}"},
        "token": {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"},
    }[role]
    with override_settings(ASSENT_METRICS_TOKEN=METRICS_TOKEN):
        return Client().generic(method, f"/{route}", **headers)
