"""OpenAPI: describe the Bearer API keys, so the schema and Swagger UI know how to authenticate."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `manage.py create_api_client`: `Authorization: Bearer <key>`.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    """The export link also opens in the same person's portal session (API.md), without a key."""

    target_class = "subjects.api.requests.OwnExportInPortal"
    name = "portalSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The portal session of the person whose request it is (their own export only).",
        }
