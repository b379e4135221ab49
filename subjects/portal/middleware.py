"""Headers for the pages people see (portal, double opt-in, unsubscribe), and the language switch.

The Content-Security-Policy is strict: nothing but this origin's style sheet and images, no script at all (the
pages work without JavaScript), forms only to this origin, never framed. It applies to the people's pages only;
the admin and the API docs bring scripts of their own."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation

from config.errors import UnavailableError
from subjects.crypto import CiphertextIntegrityError

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PEOPLES_PAGES = ("/portal/", "/u/", "/confirm/")
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(PEOPLES_PAGES):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("Permissions-Policy", PERMISSIONS)
            response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "DENY")
            # Sign-in, confirmation and unsubscribe links carry their token in the path: never sent to another
            # origin. Not "no-referrer": a browser then sends `Origin: null` with a form's POST, which Django's
            # CSRF check rightly refuses (the unsubscribe page, which has no CSRF token, sets its own).
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


class LanguageParamMiddleware:
    """`?lang=de` or `?lang=en` on any page switches the language and keeps it in Django's language cookie: a
    plain link, so the switch works without JavaScript and without a form (the pages reached from e-mails carry no
    form but their own). Without it, the language follows the cookie, then the browser (LocaleMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        wanted = request.GET.get("lang", "")
        chosen = wanted if wanted in dict(settings.LANGUAGES) else ""
        if chosen:
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        response = self.get_response(request)
        if chosen:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                chosen,
                max_age=settings.LANGUAGE_COOKIE_AGE or 365 * 24 * 3600,
                path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response


class IntegrityErrorMiddleware:
    """A stored value that fails its integrity check (copied between rows in the database, or changed) is for an
    operator to repair: the person, or the staff member in the admin, sees a readable page, never a 500. The API
    answers its own 503 problem (config.api)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path.startswith("/api/"):
            return None
        if isinstance(exception, CiphertextIntegrityError):
            log.error("integrity check failed on %s: %s", request.path, exception.detail)
            return render(request, "portal/integrity_error.html", status=503)
        if isinstance(exception, UnavailableError):
            # A consent state that cannot be read (a bad restore, a hand-made UPDATE): the page cannot say what
            # the person agreed to, so it says so instead of guessing (fail closed) or answering a 500.
            log.error("cannot decide on %s: %s", request.path, exception.detail)
            response = render(request, "portal/unavailable.html", status=503)
            response["Retry-After"] = "60"
            return response
        return None
