"""Security headers on every response: a Content-Security-Policy chosen by area (django-csp builds and sets it),
plus Permissions-Policy and Cross-Origin-Resource-Policy. Django's SecurityMiddleware sets Referrer-Policy
(SECURE_REFERRER_POLICY), X-Content-Type-Options and HSTS; XFrameOptionsMiddleware sets X-Frame-Options.

Every area is framed by nobody and loads nothing from another origin:
- the people's pages (portal, unsubscribe, confirmation) work without JavaScript; the pages reached from e-mails
  run no script at all, the portal only its own files from this origin (the save bar's count of unsaved changes);
- the admin runs Django's own scripts from this origin; its templates and widgets style elements inline, so inline
  styles (never scripts) are allowed there;
- the API docs run Swagger UI from this origin (its start-up script is served as a file, not inline);
- everything else (the API's JSON, the schema, static files) is data, never a document: nothing may load."""

from __future__ import annotations

from typing import Any

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

_NEVER_FRAMED = {"frame-ancestors": [NONE], "base-uri": [NONE], "object-src": [NONE]}

PEOPLES_PAGES = ("/u/", "/confirm/")
PEOPLE: dict[str, Any] = {
    **_NEVER_FRAMED,
    "default-src": [NONE],
    "style-src": [SELF],
    "img-src": [SELF],
    "font-src": [SELF],
    "form-action": [SELF],
}
PORTAL: dict[str, Any] = {**PEOPLE, "script-src": [SELF]}  # files only: no inline script, no other origin
ADMIN: dict[str, Any] = {
    **_NEVER_FRAMED,
    "default-src": [SELF],
    "script-src": [SELF],
    "style-src": [SELF, UNSAFE_INLINE],
    "img-src": [SELF, "data:"],  # the authenticator QR code is an inline image
    "form-action": [SELF],
}
API_DOCS: dict[str, Any] = {
    **_NEVER_FRAMED,
    "default-src": [SELF],
    "script-src": [SELF],
    "style-src": [SELF, UNSAFE_INLINE],  # Swagger UI sets styles from its script
    "img-src": [SELF, "data:"],
    "connect-src": [SELF],
    "form-action": [SELF],
}
DATA: dict[str, Any] = {**_NEVER_FRAMED, "default-src": [NONE], "form-action": [NONE]}

PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


def policy_for(path: str) -> dict[str, Any]:
    if path.startswith("/portal/"):
        return PORTAL
    if path == "/" or path.startswith(PEOPLES_PAGES):  # the front page is one of the people's pages: no script
        return PEOPLE
    if path.startswith("/admin/"):
        return ADMIN
    if path.startswith("/api/docs/"):
        return API_DOCS
    return DATA


class SecurityHeadersMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and parts.config is None:
            parts.config = policy_for(request.path_info)
        return parts

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response = super().process_response(request, response)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS)
        # Django's XFrameOptionsMiddleware sets this too, but below WhiteNoise: static files would go without.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response
