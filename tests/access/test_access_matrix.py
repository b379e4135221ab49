"""The access matrix (issue 11): who may reach what, for every route the project serves.

The routes come from the URL configuration itself (tests/access/routes.py): a new route without a row here fails
`test_every_route_has_a_row_and_every_row_a_route`, and so does a row whose route is gone. Each row below is
parametrized into one test per cell, named after route and role, so a failure says exactly who reached what.
How each request is made (paths, bodies) is in tests/access/calls.py; the world it runs against, built once and
rolled back after each cell, in tests/access/world.py.

Reading the tables: a number is the status expected; `LOGIN` is a redirect to the admin's sign-in page, `SIGNIN`
to the portal's, `CHANGE` a redirect to an admin change page, `PREFS` to the portal's preference centre, `OWN` to
one of the signed-in person's own requests. For admin actions: `DONE` means the action's effect happened,
`REFUSED` that it did not (whatever the page said), `LOGIN` that the browser was sent to sign in and nothing ran."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import override_settings
from django.urls import resolve

from consent.models import ApiClient
from tests.access import calls
from tests.access.routes import ACTION, all_routes
from tests.access.world import World
from tests.factories import ApiClientFactory

# Each cell runs in its own savepoint of the world's transaction: the `db` of tests/access/conftest.py.
IN_THE_WORLD = pytest.mark.usefixtures("db")

LOGIN = "→ /admin/login/"
CHANGE = "→ change page"
SIGNIN = "→ /portal/"
PREFS = "→ /portal/preferences"
OWN = "→ own request"
DONE = "done"
REFUSED = "refused"
Expect = int | str


# ---------------------------------------------------------------------------------------------------------
# API (API.md): 401 no or invalid key, 403 scope or purpose not granted, 404 a request this client may not see.
# Callers: `none` sends no key, `rev` a revoked key's; `wrng` holds every scope but the one the route needs; `othr`
# holds every scope but is limited (--purpose) to "offers", while the calls are for "newsletter" (the profile read
# for "order-updates"); `rght` holds exactly the route's scope.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiRow:
    route: str
    method: str
    scope: str | None
    no_key: Expect
    revoked: Expect
    wrong: Expect
    other: Expect
    right: Expect


# fmt: off
API_TABLE = [
    #      route                                                   method  scope               none rev  wrng othr rght
    ApiRow("api/schema/",                                          "GET",  None,               200, 200, 200, 200, 200),
    ApiRow("api/docs/",                                            "GET",  None,               200, 200, 200, 200, 200),
    ApiRow("^api/",                                                "GET",  None,               404, 404, 404, 404, 404),
    ApiRow("api/v1/consents",                                      "POST", "consent:write",    401, 401, 403, 403, 201),
    ApiRow("api/v1/consents/check",                                "POST", "consent:check",    401, 401, 403, 403, 200),
    ApiRow("api/v1/consents/check-bulk",                           "POST", "consent:check",    401, 401, 403, 403, 200),
    ApiRow("api/v1/consents/events/<uuid:event_id>/receipt",       "GET",  "consent:read",     401, 401, 403, 404, 200),
    ApiRow("api/v1/subjects/<uuid:subject_id>/consents",           "GET",  "consent:read",     401, 401, 403, 200, 200),
    ApiRow("api/v1/subjects/<uuid:subject_id>/consents/history",   "GET",  "consent:read",     401, 401, 403, 200, 200),
    ApiRow("api/v1/subjects/<uuid:subject_id>/profile",            "GET",  "profile:read",     401, 401, 403, 403, 200),
    ApiRow("api/v1/sends",                                         "POST", "sends:create",     401, 401, 403, 403, 201),
    ApiRow("api/v1/send-jobs",                                     "POST", "sends:create",     401, 401, 403, 403, 202),
    ApiRow("api/v1/send-jobs/<uuid:job_id>",                       "GET",  "sends:create",     401, 401, 403, 404, 200),
    ApiRow("api/v1/send-jobs/<uuid:job_id>/result",                "GET",  "sends:create",     401, 401, 403, 404, 200),
    ApiRow("api/v1/records",                                       "POST", "records:write",    401, 401, 403, 201, 201),
    ApiRow("api/v1/records/batch",                                 "POST", "records:write",    401, 401, 403, 200, 200),
    ApiRow("api/v1/merge-proposals/<uuid:proposal_id>",            "GET",  "records:write",    401, 401, 403, 200, 200),
    ApiRow("api/v1/requests",                                      "POST", "requests:write",   401, 401, 403, 403, 202),
    ApiRow("api/v1/requests/<uuid:request_id>",                    "GET",  "requests:read",    401, 401, 403, 404, 200),
    ApiRow("api/v1/requests/<uuid:request_id>/verify",             "POST", "requests:write",   401, 401, 403, 404, 200),
    ApiRow("api/v1/requests/<uuid:request_id>/approve",            "POST", "requests:approve", 401, 401, 403, 404, 202),
    ApiRow("api/v1/requests/<uuid:request_id>/lift",               "POST", "requests:approve", 401, 401, 403, 404, 202),
    ApiRow("api/v1/requests/<uuid:request_id>/export",             "GET",  "requests:read",    401, 401, 403, 404, 200),
    # a connected system's callback: signed with its connector's secret, no key opens it (test_connectors.py has the
    # signed one)
    ApiRow("api/v1/requests/<uuid:request_id>/parts/<str:part>/result", "POST", None,          401, 401, 401, 401, 401),
    # webhooks are no purpose's: `othr` may subscribe; the world's subscription is `othr`'s, so `rght` (another
    # client) does not find it to end it
    ApiRow("api/v1/webhooks",                                      "POST", "webhooks:manage",  401, 401, 403, 201, 201),
    ApiRow("api/v1/webhooks",                                      "GET",  "webhooks:manage",  401, 401, 403, 200, 200),
    ApiRow("api/v1/webhooks/<uuid:webhook_id>",                  "DELETE", "webhooks:manage", 401, 401, 403, 204, 404),
]
# fmt: on


# ---------------------------------------------------------------------------------------------------------
# Portal and the pages reached from e-mails. The person is Anna; `other` is Ben, signed in in his own browser.
# Token pages (/u/, /confirm/, sign-in and address links) answer whoever holds the link, showing no more than a
# masked address. `shows`: the person's own page shows her data (so the check that others never see it can fail).
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortalRow:
    route: str
    method: str
    anonymous: Expect
    other: Expect
    person: Expect
    shows: bool = False


# fmt: off
PORTAL_TABLE = [
    #         route                                           method  anonymous other  person  shows
    PortalRow("portal/",                                      "GET",  200,      PREFS, PREFS),
    PortalRow("portal/sent",                                  "GET",  200,      200,   200),
    PortalRow("portal/signin/<str:token>",                    "GET",  200,      200,   200),
    PortalRow("portal/signout",                               "POST", 200,      200,   200),
    PortalRow("portal/preferences",                           "GET",  SIGNIN,   200,   200),
    PortalRow("portal/history",                               "GET",  SIGNIN,   200,   200),
    PortalRow("portal/history/<uuid:event_id>/receipt",       "GET",  SIGNIN,   404,   200),
    PortalRow("portal/rights",                                "GET",  SIGNIN,   200,   200,    True),
    PortalRow("portal/rights/copy",                           "POST", SIGNIN,   OWN,   OWN),
    PortalRow("portal/rights/erasure",                        "GET",  SIGNIN,   200,   200),
    PortalRow("portal/rights/rectification",                  "GET",  SIGNIN,   200,   200,    True),
    PortalRow("portal/rights/rectification/code",             "GET",  SIGNIN,   410,   200),
    PortalRow("portal/address/<uuid:change_id>/<str:token>",  "GET",  200,      200,   200),
    PortalRow("portal/rights/restriction",                    "GET",  SIGNIN,   200,   200),
    PortalRow("portal/rights/objection",                      "GET",  SIGNIN,   200,   200),
    PortalRow("portal/rights/<str:request_id>",               "GET",  SIGNIN,   404,   200,    True),
    PortalRow("portal/rights/<str:request_id>/export",        "GET",  SIGNIN,   404,   200,    True),
    PortalRow("",                                             "GET",  200,      200,   200),  # the front page
    PortalRow("confirm/<str:token>",                          "GET",  200,      200,   200),
    PortalRow("u/<path:token>",                               "GET",  200,      200,   200),
    # API.md: the export link "also needs a Bearer key with requests:read or the same person's portal session".
    PortalRow("api/v1/requests/<uuid:request_id>/export",     "GET",  401,      401,   200,    True),
]
# fmt: on


# ---------------------------------------------------------------------------------------------------------
# Admin. `nototp` is a member of the DPO group signed in with the password only (no verified TOTP device): the
# site treats them as not staff. Support may view subjects, requests (open and verify them), the catalogue, the
# ledger and the logs; no audit log, no API clients, no merges, no staff accounts. The DPO may do everything in
# Assent's apps and manage staff; axes' lockout records are nobody's (no group holds their permissions).
# Read-only models (ledger, logs, subjects, requests) are never added, changed or deleted through the admin.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdminRow:
    route: str
    method: str
    anonymous: Expect
    nototp: Expect
    support: Expect
    dpo: Expect
    variant: str = ""  # the step, decision or format a route with such a parameter is called with


def model_rows(
    model: str, *, view: tuple[Expect, Expect], add: tuple[Expect, Expect], delete: tuple[Expect, Expect]
) -> list[AdminRow]:
    """The six routes Django gives every ModelAdmin, for (support, dpo): the changelist, change and history pages
    follow `view`; `<id>/` redirects to the change page for any staff member."""
    base = f"admin/{model}/"
    oid = "<path:object_id>"
    return [
        AdminRow(base, "GET", LOGIN, LOGIN, *view),
        AdminRow(f"{base}add/", "GET", LOGIN, LOGIN, *add),
        AdminRow(f"{base}{oid}/change/", "GET", LOGIN, LOGIN, *view),
        AdminRow(f"{base}{oid}/history/", "GET", LOGIN, LOGIN, *view),
        AdminRow(f"{base}{oid}/delete/", "GET", LOGIN, LOGIN, *delete),
        AdminRow(f"{base}{oid}/", "GET", LOGIN, LOGIN, CHANGE, CHANGE),
    ]


STEP, DECIDE, SPLIT, REVOKE = calls.STEP, calls.DECIDE, calls.SPLIT, calls.REVOKE
ASSIGN, NOTE = calls.ASSIGN, calls.NOTE
BOTH = (200, 200)
DPO_ONLY = (403, 200)
NOBODY = (403, 403)

# fmt: off
ADMIN_TABLE = [
    #        route                                      method  anonymous nototp support dpo   variant
    AdminRow("admin/",                                  "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/login/",                            "GET",  200,      200,   "→ /admin/", "→ /admin/"),
    AdminRow("admin/logout/",                           "POST", "→ /admin/", "→ /admin/", 200, 200),
    AdminRow("admin/password_change/",                  "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/password_change/done/",             "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/autocomplete/",                     "GET",  LOGIN,    LOGIN, 403,    403),
    AdminRow("admin/jsi18n/",                           "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/r/<path:content_type_id>/<path:object_id>/", "GET", LOGIN, LOGIN, 404, 404),
    AdminRow("admin/^(?P<app_label>axes|auth|otp_totp|consent|subjects)/$", "GET", LOGIN, LOGIN, 200, 200),
    AdminRow("admin/(?P<url>.*)$",                      "GET",  LOGIN,    LOGIN, 404,    404),
    AdminRow("admin/dashboard/",                        "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/records-of-processing/",            "GET",  LOGIN,    LOGIN, 200,    200),
    AdminRow("admin/records-of-processing.<str:fmt>",   "GET",  LOGIN,    LOGIN, 200,    200,  "csv"),
    AdminRow("admin/records-of-processing.<str:fmt>",   "GET",  LOGIN,    LOGIN, 200,    200,  "json"),
    # Buttons with views of their own: POST only, each checks its own permission.
    AdminRow(REVOKE, "POST", LOGIN, LOGIN, 403, CHANGE),
    AdminRow(REVOKE, "GET",  LOGIN, LOGIN, 403, 403),
    AdminRow(STEP, "POST", LOGIN, LOGIN, CHANGE, CHANGE, "verify"),
    AdminRow(STEP, "POST", LOGIN, LOGIN, 403, CHANGE, "approve"),
    AdminRow(STEP, "POST", LOGIN, LOGIN, 403, CHANGE, "reject"),
    AdminRow(STEP, "POST", LOGIN, LOGIN, 403, CHANGE, "extend"),
    AdminRow(STEP, "POST", LOGIN, LOGIN, 403, CHANGE, "lift"),
    AdminRow(STEP, "POST", LOGIN, LOGIN, 403, CHANGE, "retry"),
    AdminRow(STEP, "GET",  LOGIN, LOGIN, 403, 403,    "verify"),
    AdminRow(ASSIGN, "POST", LOGIN, LOGIN, 403, CHANGE),
    AdminRow(ASSIGN, "GET",  LOGIN, LOGIN, 403, 403),
    AdminRow(NOTE, "POST", LOGIN, LOGIN, CHANGE, CHANGE),
    AdminRow(NOTE, "GET",  LOGIN, LOGIN, 403, 403),
    AdminRow(DECIDE, "POST", LOGIN, LOGIN, 403, CHANGE, "approve"),
    AdminRow(DECIDE, "POST", LOGIN, LOGIN, 403, CHANGE, "reject"),
    AdminRow(DECIDE, "GET",  LOGIN, LOGIN, 403, 403,    "approve"),
    # The person's consent record as JSON-LD (DPV, ISO/IEC TS 27560): whoever may view the subject page.
    AdminRow("admin/subjects/subject/<uuid:object_id>/consent-record.jsonld", "GET", LOGIN, LOGIN, 200, 200),
    AdminRow(SPLIT, "POST", LOGIN, LOGIN, 403, CHANGE),
    AdminRow(SPLIT, "GET",  LOGIN, LOGIN, 403, 403),
    AdminRow("admin/otp_totp/totpdevice/<int:pk>/config/", "GET", LOGIN,  LOGIN, 403,    403),  # secrets: hidden
    AdminRow("admin/otp_totp/totpdevice/<int:pk>/qrcode/", "GET", LOGIN,  LOGIN, 403,    403),
    AdminRow("admin/auth/user/<id>/password/",          "GET",  LOGIN,    LOGIN, 403,    200),
    *model_rows("auth/user",                 view=DPO_ONLY, add=DPO_ONLY, delete=DPO_ONLY),
    *model_rows("auth/group",                view=DPO_ONLY, add=DPO_ONLY, delete=DPO_ONLY),
    *model_rows("otp_totp/totpdevice",       view=DPO_ONLY, add=DPO_ONLY, delete=DPO_ONLY),
    *model_rows("axes/accessattempt",        view=NOBODY,   add=NOBODY,   delete=NOBODY),
    *model_rows("axes/accesslog",            view=NOBODY,   add=NOBODY,   delete=NOBODY),
    *model_rows("axes/accessfailurelog",     view=NOBODY,   add=NOBODY,   delete=NOBODY),
    *model_rows("consent/auditentry",        view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
    *model_rows("consent/apiclient",         view=DPO_ONLY, add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/cataloguerevision", view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
    *model_rows("consent/channel",           view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/datacategory",      view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/source",            view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/sourcecategory",    view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/purpose",           view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/notice",            view=BOTH,     add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/consentevent",      view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/consentstate",      view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/ledgerhead",        view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/objection",         view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/readlog",           view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/send",              view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/sendrecipient",     view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("consent/webhooksubscription", view=DPO_ONLY, add=DPO_ONLY, delete=NOBODY),
    *model_rows("consent/webhookdelivery",   view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
    *model_rows("consent/sendjob",           view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
    *model_rows("subjects/subject",          view=BOTH,     add=NOBODY,   delete=NOBODY),
    *model_rows("subjects/rightsrequest",    view=BOTH,     add=BOTH,     delete=NOBODY),
    *model_rows("subjects/mergeaudit",       view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
    *model_rows("subjects/mergeproposal",    view=DPO_ONLY, add=NOBODY,   delete=NOBODY),
]
# fmt: on


@dataclass(frozen=True)
class ActionRow:
    key: str  # "<changelist route> action <name>"
    anonymous: Expect
    nototp: Expect
    support: Expect
    dpo: Expect


def action(changelist: str, name: str, support: Expect, dpo: Expect) -> ActionRow:
    return ActionRow(f"admin/{changelist}/{ACTION}{name}", LOGIN, LOGIN, support, dpo)


# fmt: off
ACTION_TABLE = [
    #      changelist                    action                      support  dpo
    action("subjects/rightsrequest",     "verify_selected",          DONE,    DONE),
    action("subjects/rightsrequest",     "approve_selected",         REFUSED, DONE),
    action("subjects/rightsrequest",     "retry_selected",           REFUSED, DONE),
    action("subjects/rightsrequest",     "delete_selected",          REFUSED, REFUSED),
    action("consent/apiclient",          "revoke_selected",          REFUSED, DONE),
    action("consent/apiclient",          "delete_selected",          REFUSED, REFUSED),
    action("consent/webhooksubscription", "end_selected",            REFUSED, DONE),
    action("consent/webhooksubscription", "replay_dead_selected",    REFUSED, DONE),
    action("consent/webhooksubscription", "delete_selected",         REFUSED, REFUSED),
    action("consent/webhookdelivery",    "replay_selected",          REFUSED, DONE),
    action("consent/webhookdelivery",    "delete_selected",          REFUSED, REFUSED),
    action("auth/user",                  "delete_selected",          REFUSED, DONE),
    action("auth/group",                 "delete_selected",          REFUSED, DONE),
    action("otp_totp/totpdevice",        "delete_selected",          REFUSED, DONE),
    action("consent/channel",            "delete_selected",          REFUSED, REFUSED),
    action("consent/datacategory",       "delete_selected",          REFUSED, REFUSED),
    action("consent/source",             "delete_selected",          REFUSED, REFUSED),
    action("consent/sourcecategory",     "delete_selected",          REFUSED, REFUSED),
    action("consent/purpose",            "delete_selected",          REFUSED, REFUSED),
    action("consent/notice",             "delete_selected",          REFUSED, REFUSED),
    action("axes/accessattempt",         "delete_selected",          REFUSED, REFUSED),
    action("axes/accessattempt",         "cleanup_expired_attempts", REFUSED, REFUSED),
    action("axes/accesslog",             "delete_selected",          REFUSED, REFUSED),
    action("axes/accessfailurelog",      "delete_selected",          REFUSED, REFUSED),
]
# fmt: on


# ---------------------------------------------------------------------------------------------------------
# Operations (issue 15): the probes answer anyone (a load balancer has no key) and show no personal data;
# /metrics answers only the operator's token (ASSENT_METRICS_TOKEN), never an API key, however many scopes it holds.
# Callers: `anonymous` sends nothing, `api_key` a key with every scope (`othr`'s), `token` the metrics token.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpsRow:
    route: str
    method: str
    anonymous: Expect
    api_key: Expect
    token: Expect


# fmt: off
OPS_TABLE = [
    #      route      method  anonymous api_key token
    OpsRow("healthz", "GET",  200,      200,    200),
    OpsRow("readyz",  "GET",  200,      200,    200),
    OpsRow("metrics", "GET",  401,      401,    200),
    # The keys that verify consent receipts are public (issue 16).
    OpsRow(".well-known/jwks.json", "GET", 200, 200,    200),
]
# fmt: on


# ---------------------------------------------------------------------------------------------------------
# The cells
# ---------------------------------------------------------------------------------------------------------
API_ROLES = ("no_key", "revoked", "wrong", "other", "right")
PORTAL_ROLES = ("anonymous", "other", "person")
ADMIN_ROLES = ("anonymous", "nototp", "support", "dpo")
OPS_ROLES = ("anonymous", "api_key", "token")


def _cells(table: list[Any], roles: tuple[str, ...], name: str) -> list[Any]:
    cells = []
    for row in table:
        label = getattr(row, name)
        variant = getattr(row, "variant", "")
        method = getattr(row, "method", "")
        for role in roles:
            cell_id = " ".join(part for part in (method, label, variant, role) if part)
            cells.append(pytest.param(row, role, id=cell_id))
    return cells


API_CELLS = _cells(API_TABLE, API_ROLES, "route")
PORTAL_CELLS = _cells(PORTAL_TABLE, PORTAL_ROLES, "route")
ADMIN_CELLS = _cells(ADMIN_TABLE, ADMIN_ROLES, "route")
ACTION_CELLS = _cells(ACTION_TABLE, ADMIN_ROLES, "key")
OPS_CELLS = _cells(OPS_TABLE, OPS_ROLES, "route")
CELL_COUNT = len(API_CELLS) + len(PORTAL_CELLS) + len(ADMIN_CELLS) + len(ACTION_CELLS) + len(OPS_CELLS)


def _rows() -> set[str]:
    return (
        {row.route for row in API_TABLE}
        | {row.route for row in PORTAL_TABLE}
        | {row.route for row in ADMIN_TABLE}
        | {row.key for row in ACTION_TABLE}
        | {row.route for row in OPS_TABLE}
    )


@override_settings(ROOT_URLCONF="tests.access.urls_with_a_new_route")
def test_a_new_route_without_a_row_is_noticed() -> None:
    assert all_routes() - _rows() == {"api/v1/forgotten"}


def test_every_route_has_a_row_and_every_row_a_route() -> None:
    rows = _rows()
    routes = all_routes()
    assert sorted(routes - rows) == [], "routes without a row in the access matrix"
    assert sorted(rows - routes) == [], "rows of the access matrix whose route is gone"
    print(f"\naccess matrix: {len(routes)} routes, {CELL_COUNT} cells")


@IN_THE_WORLD
def test_each_api_view_requires_the_scope_its_row_names(world: World) -> None:
    """The scope column is the code's: a view whose `required_scope` changes (or goes: HasScope then refuses every
    client) fails here as well as in its cells."""
    for row in API_TABLE:
        path, _ = calls.API_CALLS[row.route](world)
        view = resolve(path.split("?")[0]).func
        assert getattr(getattr(view, "view_class", None), "required_scope", None) == row.scope, row.route


def _body(response: Any) -> str:
    """The text of a response; of a zip (an export), the text of every file in it."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if response.get("Content-Type") == "application/zip":
        archive = zipfile.ZipFile(io.BytesIO(content))
        content = b"\n".join(archive.read(name) for name in archive.namelist())
    return str(content.decode(errors="replace"))


def _assert_answer(response: Any, expected: Expect, path: str) -> None:
    location = response.get("Location", "")
    if isinstance(expected, int):
        assert response.status_code == expected, (response.status_code, location, _body(response)[:300])
        return
    assert response.status_code == 302, (response.status_code, _body(response)[:300])
    wanted = {
        LOGIN: lambda: location.startswith("/admin/login/"),
        CHANGE: lambda: re.fullmatch(r"/admin/[a-z_]+/[a-z]+/[^/]+/change/", location) is not None,
        SIGNIN: lambda: location == "/portal/",
        PREFS: lambda: location == "/portal/preferences",
        OWN: lambda: re.fullmatch(r"/portal/rights/[0-9a-f-]{36}", location) is not None,
    }.get(expected, lambda: location == expected.removeprefix("→ "))
    assert wanted(), f"{path}: redirected to {location!r}, expected {expected}"


def _assert_nothing_of_annas(world: World, text: str, who: str) -> None:
    leaked = [secret for secret in world.anna_secrets if secret.lower() in text.lower()]
    assert not leaked, f"{who} was shown Anna's {leaked}"


@IN_THE_WORLD
@pytest.mark.parametrize(("row", "role"), API_CELLS)
def test_api_cell(world: World, row: ApiRow, role: str) -> None:
    every_but = [s for s in ApiClient.Scope.values if s != row.scope]
    key = {
        "no_key": lambda: None,
        "revoked": lambda: world.keys["revoked"],
        "other": lambda: world.keys["other_purpose"],
        "wrong": lambda: ApiClientFactory(name="matrix-wrong", scopes=every_but)[1],
        "right": lambda: ApiClientFactory(name="matrix-right", scopes=[row.scope] if row.scope else every_but)[1],
    }[role]()
    address = f"198.18.{API_TABLE.index(row)}.{API_ROLES.index(role) + 1}"  # one per cell: no lockout between

    response = calls.api_call(world, row.route, row.method, key, address)

    _assert_answer(response, getattr(row, role), row.route)
    if response.status_code >= 400 and row.route.startswith("api/v1/"):
        assert response["Content-Type"].startswith("application/problem+json")
    if role in ("no_key", "revoked", "wrong") and row.route.startswith("api/v1/"):
        _assert_nothing_of_annas(world, _body(response), role)
    if role == "other" and response.status_code < 300 and row.route.startswith("api/v1/subjects/"):
        assert "newsletter" not in _body(response), "a client limited to offers was shown newsletter states"


@IN_THE_WORLD
@pytest.mark.parametrize(("row", "role"), PORTAL_CELLS)
def test_portal_cell(world: World, row: PortalRow, role: str) -> None:
    response = calls.portal_call(world, row.route, row.method, role)

    _assert_answer(response, getattr(row, role), row.route)
    text = _body(response) + response.get("Location", "")
    if role != "person":
        _assert_nothing_of_annas(world, text, role)
        if role == "other" and getattr(row, role) == OWN:
            assert str(world.ids["anna_copy"]) not in response["Location"]
    elif row.shows:
        assert any(secret in text for secret in world.anna_secrets), "Anna's own page shows nothing of hers"


@IN_THE_WORLD
@pytest.mark.parametrize(("row", "role"), ADMIN_CELLS)
def test_admin_cell(world: World, row: AdminRow, role: str) -> None:
    effect = calls.BUTTON_EFFECTS.get((row.route, row.variant))
    assert effect is None or not effect(world), "the world must start without the button's effect"

    response = calls.admin_call(world, row.route, row.method, role, row.variant)

    expected = getattr(row, role)
    _assert_answer(response, expected, row.route)
    if role in ("anonymous", "nototp"):
        _assert_nothing_of_annas(world, _body(response), role)
    if effect is not None:  # a button: its effect is there exactly when the role may press it
        assert effect(world) is (row.method == "POST" and expected == CHANGE), f"{role}: {response.status_code}"


@IN_THE_WORLD
@pytest.mark.parametrize(("row", "role"), ACTION_CELLS)
def test_admin_action_cell(world: World, row: ActionRow, role: str) -> None:
    target = calls.ACTION_TARGETS[row.key]
    assert not target.done(world), "the world must start without the action's effect"

    response = calls.action_call(world, row.key, role)

    expected = getattr(row, role)
    if expected == LOGIN:
        _assert_answer(response, LOGIN, row.key)
    else:
        assert response.status_code in (200, 302, 403), response.status_code
    assert target.done(world) is (expected == DONE), f"{role} ran {row.key}: {response.status_code}"


@IN_THE_WORLD
@pytest.mark.parametrize(("row", "role"), OPS_CELLS)
def test_ops_cell(world: World, row: OpsRow, role: str) -> None:
    response = calls.ops_call(world, row.route, row.method, role)

    _assert_answer(response, getattr(row, role), row.route)
    _assert_nothing_of_annas(world, _body(response), role)
