"""The portal's middleware: the language switch, and a readable page for a value that fails its integrity check.
(Security headers for every area, the people's pages included, are set in config/security.py.)"""

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
