"""OpenAPI: the Bearer API keys and the portal session as security schemes, every operation's scope in its
description, and the people the request examples name."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample


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


class AssentAutoSchema(AutoSchema):
    """Every operation's description ends with the scope it needs, read from the view's `required_scope`, so the
    docs cannot drift from the check (config.api.HasScope)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        # Here, not in get_description: extend_schema(description=...) replaces that method in a subclass.
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        scope = getattr(self.view, "required_scope", None)
        if operation is not None and scope is not None:
            said = operation.get("description", "")
            operation["description"] = (
                f"{said}\n\n**Scope:** `{scope}` (else 403 `forbidden`, naming the scope in `scope`)."
            ).lstrip()
        return operation


# The people the examples name: a demo customer (consent/demo/customers.json) and another one, so an example works
# against `make demo` as it is; tests/config/test_api_docs.py posts each example against the test catalogue.
EXAMPLE_EMAIL = "anna.becker@example.org"
EXAMPLE_PERSON = {"email": EXAMPLE_EMAIL}
EXAMPLE_OTHER = {"customer_number": "C-100002"}


def example(summary: str, value: Any, *, description: str = "", media_type: str = "application/json") -> OpenApiExample:
    """A request example (the first one of an operation is what Swagger UI fills in)."""
    return OpenApiExample(
        summary, summary=summary, description=description, value=value, request_only=True, media_type=media_type
    )
