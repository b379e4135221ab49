"""Pages reached from e-mails: the double opt-in confirmation and the unsubscribe link. GET shows, only a POST acts
(mail scanners prefetch links)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.net import request_evidence
from consent.double_opt_in import confirmation_confirm, confirmation_from_token
from consent.errors import ConfirmationInvalidError
from consent.gates.unsubscribe import (
    ONE_CLICK_BODY,
    UnsubscribeInvalidError,
    unsubscribe_all_marketing,
    unsubscribe_confirm,
    unsubscribe_from_token,
)


@require_http_methods(["GET", "POST"])
def confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            try:
                view = confirmation_confirm(token=token, evidence=request_evidence(request, "confirm-page"))
                return render(request, "consent/confirm.html", {"view": view, "done": True})
            except ConfirmationInvalidError:
                # A second press, or a press after expiry, of a genuine link gets the clear "used" or "expired"
                # page that a GET shows, not the page for a forged link.
                view = confirmation_from_token(token=token)
                if view.state == "open":
                    raise
        else:
            view = confirmation_from_token(token=token)
    except ConfirmationInvalidError as exc:
        return render(request, "consent/confirm_invalid.html", {"detail": exc.detail}, status=404)
    return render(request, "consent/confirm.html", {"view": view, "done": False})


_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _one_click(request: HttpRequest) -> bool:
    """RFC 8058: the mail provider POSTs `List-Unsubscribe=One-Click` as a form body."""
    if request.POST.get("List-Unsubscribe") == "One-Click":
        return True
    return request.content_type not in _FORM_TYPES and request.body.strip() == ONE_CLICK_BODY.encode()


@csrf_exempt  # RFC 8058: the one-click POST comes from a mail provider, without cookies or a CSRF token
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])  # scanners send HEAD too; it shows, like GET
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """`/u/<token>`: GET shows what the link unsubscribes from and changes nothing; a POST (the one-click body or
    the page's button) withdraws, the second button objects to all direct marketing. No sign-in: the signed link
    is the authority, and unsubscribing only ever reduces processing."""
    try:
        if request.method == "POST":
            if request.POST.get("choice") == "no-marketing":
                view, _ = unsubscribe_all_marketing(token=token, evidence=request_evidence(request, "unsubscribe-page"))
                response = render(request, "consent/unsubscribe.html", {"view": view, "done": "all"})
            else:
                form = "one-click" if _one_click(request) else "unsubscribe-page"
                result = unsubscribe_confirm(token=token, form=form, evidence=request_evidence(request, form))
                response = render(request, "consent/unsubscribe.html", {"view": result.view, "done": "purpose"})
        else:
            view = unsubscribe_from_token(token=token)
            response = render(request, "consent/unsubscribe.html", {"view": view, "done": ""})
    except UnsubscribeInvalidError:
        response = render(request, "consent/unsubscribe_invalid.html", status=404)
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    response["X-Robots-Tag"] = "noindex"
    return response
