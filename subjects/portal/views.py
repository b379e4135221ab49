"""The portal's pages: thin views that parse a form, call one service or selector and render a template.

Every page works without JavaScript; every form carries a CSRF token; nothing personal is cached (never_cache).
A page for anything that is not the signed-in person's own (another person's request or export, a forged id) is
the same "not found" page as for something that does not exist: nothing changes and nothing is revealed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from config.errors import DomainError
from config.net import client_address, request_evidence
from consent.gpc import gpc_honour, gpc_signal
from consent.models import Purpose
from subjects.models import RightsRequest
from subjects.portal import selectors
from subjects.portal.addresses import (
    AddressRateLimitedError,
    AddressRefusedError,
    AddressSendError,
    Outcome,
    address_change_confirm,
    address_change_pending,
    address_change_request,
    address_link_open,
)
from subjects.portal.forms import (
    CodeForm,
    CopyForm,
    ErasureForm,
    ObjectionForm,
    PreferencesForm,
    RectificationForm,
    RestrictionForm,
    SigninForm,
    consent_field,
    notice_field,
    objection_field,
)
from subjects.portal.services import preferences_changes, preferences_save, rights_request_open
from subjects.portal.session import (
    Person,
    erasure_ended,
    person_of,
    person_remember_subject,
    person_sign_in,
    person_sign_out,
)
from subjects.portal.signin import (
    NONCE_COOKIE,
    LinkState,
    SigninMailError,
    SigninRateLimitedError,
    email_mask,
    nonce_new,
    nonce_valid,
    signin_consume,
    signin_link,
    signin_minutes,
    signin_request,
)
from subjects.rights import texts
from subjects.rights.errors import ExportUnavailableError, RequestOpenError
from subjects.rights.exports import export_open, export_url
from subjects.rights.selectors import request_get

PersonView = Callable[..., HttpResponseBase]


def _language() -> str:
    return (translation.get_language() or settings.LANGUAGE_CODE)[:2]


def _page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    return render(request, f"portal/{template}", context or {}, status=status)


def signed_in(view: PersonView) -> PersonView:
    """Only for a signed-in person; anyone else (never signed in, signed out, session over) goes to sign-in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        person = person_of(request)
        if person is None:
            erased = erasure_ended(request)
            if erased is not None:
                return _erased_page(request, erased)
            return redirect("portal:signin")
        return view(request, person, *args, **kwargs)

    return wrapper


def _erased_page(request: HttpRequest, subject_id: uuid.UUID) -> HttpResponse:
    """The person's erasure completed while they were signed in: the session has ended; this says what happened."""
    erasure = selectors.erasure_completed_of(subject_id=subject_id)
    language = _language()
    result = erasure.result if erasure is not None else {}
    context = {
        "completed": texts.date_format(erasure.completed_at if erasure else None, language),
        "kept": texts.kept_for_person(result, selectors.category_names(language), language),
    }
    return _page(request, "erased.html", context)


# ---------------------------------------------------------------------------------------------------------
# Sign-in
# ---------------------------------------------------------------------------------------------------------
@never_cache
@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponseBase:
    if request.method == "GET":
        if person_of(request) is not None:
            return redirect("portal:preferences")
        return _page(request, "signin.html", {"form": SigninForm(), "minutes": signin_minutes()})
    form = SigninForm(request.POST)
    if not form.is_valid():
        return _page(request, "signin.html", {"form": form, "minutes": signin_minutes()}, status=400)
    current = request.COOKIES.get(NONCE_COOKIE)
    nonce = current if current and nonce_valid(current) else nonce_new()
    try:
        signin_request(email=form.cleaned_data["email"], nonce=nonce, ip=client_address(request))
    except SigninRateLimitedError:
        return _page(request, "rate_limited.html", status=429)
    except SigninMailError:
        return _page(request, "mail_failed.html", status=503)
    response = redirect("portal:sent")
    response.set_cookie(
        NONCE_COOKIE,
        nonce,
        max_age=signin_minutes() * 60,
        path="/portal/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


@never_cache
def signin_sent(request: HttpRequest) -> HttpResponse:
    return _page(request, "signin_sent.html", {"minutes": signin_minutes()})


@never_cache
@require_http_methods(["GET", "POST"])
def signin_with_link(request: HttpRequest, token: str) -> HttpResponseBase:
    """The link from the mail. In the browser that asked for it, it signs in at once; anywhere else it shows a page
    asking to confirm, and only that page's button signs in (a mail scanner's prefetch consumes nothing)."""
    link = signin_link(token=token, nonce=request.COOKIES.get(NONCE_COOKIE))
    if link.state != LinkState.OPEN or link.email is None:
        status = 404 if link.state == LinkState.INVALID else 410
        return _page(request, "signin_invalid.html", {"state": link.state.value}, status=status)
    if request.method == "GET" and not link.same_browser:
        return _page(request, "signin_confirm.html", {"masked": email_mask(link.email)})
    if not signin_consume(link):
        return _page(request, "signin_invalid.html", {"state": LinkState.USED.value}, status=410)
    person_sign_in(request, email=link.email)
    response = redirect("portal:preferences")
    response.delete_cookie(NONCE_COOKIE, path="/portal/")
    return response


@never_cache
@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    person_sign_out(request)
    return _page(request, "signed_out.html")


# ---------------------------------------------------------------------------------------------------------
# Preference centre
# ---------------------------------------------------------------------------------------------------------
def _locked(person: Person) -> bool:
    return person.ambiguous or person.erasure_in_progress


def _preference_rows(form: PreferencesForm) -> dict[str, Any]:
    prefs = form.preferences
    return {
        "consent": [
            (
                purpose,
                [(channel, form[consent_field(purpose.key, channel.key)]) for channel in purpose.channels],
                form[notice_field(purpose.key)],
            )
            for purpose in prefs.consent
        ],
        "legitimate": [(purpose, form[objection_field(purpose.key)]) for purpose in prefs.legitimate_interest],
        "information": prefs.information,
        "no_marketing": form["no_marketing"],
        "no_marketing_since": prefs.no_marketing_since,
    }


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def preferences(request: HttpRequest, person: Person) -> HttpResponseBase:
    current = selectors.preferences_get(subject_id=person.subject_id, language=_language(), now=timezone.now())
    locked = _locked(person)
    if request.method == "GET":
        form = PreferencesForm(preferences=current, locked=locked)
        return _page(request, "preferences.html", _preferences_context(person, form, request))
    if locked:
        return _page(request, "locked.html", {"person": person, "nav": "preferences"}, status=409)
    form = PreferencesForm(request.POST, preferences=current)
    if not form.is_valid():
        return _page(request, "preferences.html", _preferences_context(person, form), status=400)
    changes = preferences_changes(current=current, wanted=form.wanted())
    if not changes:
        messages.info(request, _("Nothing has changed: your choices were saved already."))
        _gpc_honour(request, person.subject_id, granted=frozenset())
        return redirect("portal:preferences")
    evidence = {
        **request_evidence(request, "portal-preferences"),
        "signin": "email-link",
        "signed_in_at": person.signed_in_at.isoformat(),
    }
    try:
        saved = preferences_save(person=person, changes=changes, evidence=evidence)
    except DomainError:
        messages.error(request, _("Your choices could not all be saved. Please check them and try again."))
        return redirect("portal:preferences")
    if saved.subject_id is not None and person.subject_id is None:
        person_remember_subject(request, saved.subject_id)
    messages.success(request, _("Your choices are saved."))
    _gpc_honour(request, saved.subject_id, granted=frozenset(c.purpose for c in changes if c.action == "grant"))
    if "pending_confirmation" in saved.states.values():
        messages.info(
            request,
            _("We have sent you an e-mail: please confirm with the link in it. Until then we send you no e-mails."),
        )
    return redirect("portal:preferences")


def _gpc_honour(request: HttpRequest, subject_id: uuid.UUID | None, *, granted: frozenset[str]) -> None:
    """A save from a browser that sends Global Privacy Control records it as the person's objection (consent.gpc),
    except for a purpose the person switched on in this very save, and says so."""
    if subject_id is None or not gpc_signal(request.headers):
        return
    objected = gpc_honour(subject_id=subject_id, via="portal", spare=granted)
    if objected:
        names = selectors.names_of(Purpose)
        messages.info(
            request,
            _(
                "Your browser sends the Global Privacy Control signal. "
                "We honour it and have objected for you to: %(purposes)s."
            )
            % {"purposes": ", ".join(names.get(key, key) for key in objected)},
        )


def _preferences_context(person: Person, form: PreferencesForm, request: HttpRequest | None = None) -> dict[str, Any]:
    return {
        "person": person,
        "nav": "preferences",
        "form": form,
        "locked": _locked(person),
        "gpc": request is not None and gpc_signal(request.headers),
        **_preference_rows(form),
    }


# ---------------------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------------------
@never_cache
@require_http_methods(["GET"])
@signed_in
def history(request: HttpRequest, person: Person) -> HttpResponse:
    rows = selectors.history_list(subject_id=person.subject_id) if person.subject_id else []
    return _page(
        request, "history.html", {"person": person, "nav": "history", "rows": rows, "sources": selectors.source_names()}
    )


@never_cache
@require_http_methods(["GET"])
@signed_in
def history_receipt(request: HttpRequest, person: Person, event_id: uuid.UUID) -> HttpResponse:
    """One of the person's signed consent receipts as a file (consent.receipts): anyone else's is a 404."""
    found = selectors.history_receipt(subject_id=person.subject_id, event_id=event_id) if person.subject_id else None
    if found is None:
        return _not_found(request, person)
    seq, token = found
    response = HttpResponse(token, content_type="application/jose")
    response["Content-Disposition"] = f'attachment; filename="consent-receipt-{seq}.jws"'
    return response


# ---------------------------------------------------------------------------------------------------------
# Rights
# ---------------------------------------------------------------------------------------------------------
def _rights_context(person: Person, **extra: Any) -> dict[str, Any]:
    return {"person": person, "nav": "rights", **extra}


def _open(request: HttpRequest, person: Person, kind: str, details: object) -> HttpResponseBase:
    try:
        opened = rights_request_open(person=person, kind=kind, details=details)
    except RequestOpenError as exc:
        existing = exc.extra.get("id")
        return _page(request, "request_open.html", _rights_context(person, existing=existing), status=409)
    return redirect("portal:request", request_id=opened.pk)


def _needs_subject(request: HttpRequest, person: Person) -> HttpResponse | None:
    if person.subject_id is None or _locked(person):
        return _page(request, "rights_none.html", _rights_context(person), status=409)
    return None


@never_cache
@require_http_methods(["GET"])
@signed_in
def rights(request: HttpRequest, person: Person) -> HttpResponse:
    requests = selectors.requests_of_person(subject_id=person.subject_id) if person.subject_id else []
    return _page(request, "rights.html", _rights_context(person, requests=requests, copy_form=CopyForm()))


@never_cache
@require_POST
@signed_in
def rights_copy(request: HttpRequest, person: Person) -> HttpResponseBase:
    """Art. 15 / 20: verified by the sign-in, so it starts at once."""
    if refused := _needs_subject(request, person):
        return refused
    form = CopyForm(request.POST)
    if not form.is_valid():
        return redirect("portal:rights")
    return _open(request, person, form.cleaned_data["kind"], {})


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def rights_erasure(request: HttpRequest, person: Person) -> HttpResponseBase:
    """Art. 17: a confirmation step that says what will be kept, where and why, before the request is opened."""
    if refused := _needs_subject(request, person):
        return refused
    assert person.subject_id is not None
    form = ErasureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return _open(request, person, RightsRequest.Kind.ERASURE, {})
    preview = selectors.erasure_preview(subject_id=person.subject_id)
    status = 400 if request.method == "POST" else 200
    return _page(request, "erasure.html", _rights_context(person, form=form, preview=preview), status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def rights_rectification(request: HttpRequest, person: Person) -> HttpResponseBase:
    """Art. 16: correct contact data. Profile fields open a request at once (verified by the sign-in); a new e-mail
    address or phone number takes effect only once confirmed by a link or code sent to it."""
    if refused := _needs_subject(request, person):
        return refused
    assert person.subject_id is not None
    contact = selectors.contact_data(subject_id=person.subject_id)
    form = RectificationForm(request.POST or None, contact=contact, email=person.email)
    if request.method == "POST" and form.is_valid():
        started: dict[str, uuid.UUID] = {}
        for kind, value in form.address_changes().items():
            try:
                started[kind] = address_change_request(subject_id=person.subject_id, kind=kind, value=value)
            except AddressRefusedError:
                form.refuse(kind)
            except AddressRateLimitedError:
                return _page(request, "address_limited.html", _rights_context(person), status=429)
            except AddressSendError:
                return _page(request, "mail_failed.html", _rights_context(person), status=503)
        if not form.errors:
            return _rectification_started(request, person, form, started)
    status = 400 if request.method == "POST" else 200
    return _page(request, "rectification.html", _rights_context(person, form=form), status=status)


def _rectification_started(
    request: HttpRequest, person: Person, form: RectificationForm, started: dict[str, uuid.UUID]
) -> HttpResponseBase:
    details = form.details()
    if details and started:
        try:
            rights_request_open(person=person, kind=RightsRequest.Kind.RECTIFICATION, details=details)
            messages.success(request, _("Your correction is on its way."))
        except RequestOpenError:
            pass
    elif details:
        return _open(request, person, RightsRequest.Kind.RECTIFICATION, details)
    if "phone" in started:
        if "email" in started:
            messages.info(request, _("We have sent a link to your new e-mail address: please confirm with it."))
        return redirect("portal:address-code")
    return _page(request, "address_sent.html", _rights_context(person, minutes=settings.ASSENT_ADDRESS_LINK_MINUTES))


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def address_code(request: HttpRequest, person: Person) -> HttpResponseBase:
    """The code sent by SMS to a new phone number."""
    if person.subject_id is None:
        return redirect("portal:rights-rectification")
    pending = address_change_pending(subject_id=person.subject_id, kind="phone")
    form = CodeForm(request.POST or None)
    context = _rights_context(person, form=form, pending=pending, minutes=settings.ASSENT_PHONE_CODE_MINUTES)
    if pending is None:
        return _page(request, "address_failed.html", _rights_context(person, outcome="gone"), status=410)
    if request.method == "GET" or not form.is_valid():
        return _page(request, "address_code.html", context, status=200 if request.method == "GET" else 400)
    done = address_change_confirm(change_id=pending.id, secret=form.cleaned_data["code"])
    if done.outcome == Outcome.CONFIRMED:
        messages.success(request, _("Your new phone number is confirmed and saved."))
        return redirect("portal:rights-rectification")
    if done.outcome == Outcome.WRONG:
        form.add_error(
            "code",
            ngettext(
                "This code is not right. You can try once more.",
                "This code is not right. You can try %(count)d more times.",
                done.tries_left,
            )
            % {"count": done.tries_left},
        )
        return _page(request, "address_code.html", context, status=400)
    return _page(request, "address_failed.html", _rights_context(person, outcome=done.outcome.value), status=409)


@never_cache
@require_http_methods(["GET", "POST"])
def address_link(request: HttpRequest, change_id: uuid.UUID, token: str) -> HttpResponseBase:
    """The link mailed to a new e-mail address. GET shows a button and changes nothing (mail scanners prefetch
    links); its POST confirms. The token proves the mailbox; the change was asked for by the signed-in person."""
    if request.method == "GET":
        pending = address_link_open(change_id=change_id, token=token)
        if pending is None:
            return _page(request, "address_failed.html", {"outcome": "gone"}, status=410)
        return _page(request, "address_confirm.html", {"masked": email_mask(pending.value)})
    done = address_change_confirm(change_id=change_id, secret=token)
    if done.outcome != Outcome.CONFIRMED or done.subject_id is None:
        return _page(request, "address_failed.html", {"outcome": done.outcome.value}, status=409)
    # A session of this person (in this browser or another) follows to the new address on its next request.
    return _page(request, "address_done.html", {"person": person_of(request)})


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def rights_restriction(request: HttpRequest, person: Person) -> HttpResponseBase:
    """Art. 18: while restricted, every use but storage is denied."""
    if refused := _needs_subject(request, person):
        return refused
    form = RestrictionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return _open(request, person, RightsRequest.Kind.RESTRICTION, {"ground": form.cleaned_data["ground"]})
    status = 400 if request.method == "POST" else 200
    return _page(request, "restriction.html", _rights_context(person, form=form), status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@signed_in
def rights_objection(request: HttpRequest, person: Person) -> HttpResponseBase:
    """Art. 21: to all direct marketing (absolute) or to one purpose resting on legitimate interest."""
    if refused := _needs_subject(request, person):
        return refused
    current = selectors.preferences_get(subject_id=person.subject_id, language=_language(), now=timezone.now())
    purposes = [(p.key, p.name) for p in current.legitimate_interest]
    form = ObjectionForm(request.POST or None, purposes=purposes)
    if request.method == "POST" and form.is_valid():
        return _open(request, person, RightsRequest.Kind.OBJECTION, form.details())
    status = 400 if request.method == "POST" else 200
    return _page(request, "objection.html", _rights_context(person, form=form), status=status)


def _own_request(person: Person, request_id: str) -> RightsRequest | None:
    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        return None
    return selectors.request_of_person(request_id=wanted, subject_id=person.subject_id)


def _not_found(request: HttpRequest, person: Person) -> HttpResponse:
    return _page(request, "not_found.html", _rights_context(person), status=404)


@never_cache
@require_http_methods(["GET"])
@signed_in
def request_detail(request: HttpRequest, person: Person, request_id: str) -> HttpResponse:
    own = _own_request(person, request_id)
    if own is None:
        return _not_found(request, person)
    view = request_get(request_id=own.pk)
    return _page(
        request,
        "request.html",
        _rights_context(
            person,
            req=view.request,
            events=view.history,
            has_export=view.has_export and view.request.status == RightsRequest.Status.COMPLETED,
            result=view.request.result,
            kept=texts.kept_for_person(view.request.result, selectors.category_names(_language()), _language()),
            steps=selectors.request_steps(request=view.request, history=view.history),
        ),
    )


@never_cache
@require_http_methods(["GET"])
@signed_in
def request_export(request: HttpRequest, person: Person, request_id: str) -> HttpResponseBase:
    """The export, for its own person's session only (API.md: the link also opens with the same person's portal
    session); anyone else's id is the same 404 as an unknown one."""
    own = _own_request(person, request_id)
    if own is None:
        return _not_found(request, person)
    # The export's signed link, issued afresh as the API does; it never leaves the server here.
    token = parse_qs(urlsplit(export_url(request_id=own.pk)).query).get("token", [""])[0]
    try:
        chunks, size = export_open(request_id=own.pk, token=token)
    except ExportUnavailableError:
        return _not_found(request, person)
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="assent-export-{own.pk}.zip"'
    response["Content-Length"] = str(size)
    return response


# ---------------------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------------------
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form older than its session, or sent from elsewhere: nothing was changed."""
    return render(request, "portal/csrf_failure.html", {"retry": request.path}, status=403)
