"""Pages reached from e-mails: the double opt-in confirmation. GET shows, only the button's POST acts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from consent.confirmations import confirmation_confirm, confirmation_from_token
from consent.errors import ConfirmationInvalidError


def request_evidence(request: HttpRequest, form: str) -> dict[str, str]:
    """What proves the person's own act, without more personal data than needed: the IP is truncated."""
    ip = request.META.get("REMOTE_ADDR", "")
    if ":" in ip:
        truncated = ":".join(ip.split(":")[:3]) + "::"
    else:
        truncated = ".".join([*ip.split(".")[:3], "0"]) if ip.count(".") == 3 else ""
    return {"form": form, "ip": truncated, "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}


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
