"""/api/schema/ as drf-spectacular serves it, readable in a browser, and the subject reference's shape. Apart from
config.schema, which DRF imports while drf-spectacular's views module is still loading (the schema class of every
view)."""

from __future__ import annotations

from collections.abc import Iterable

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.renderers import OpenApiJsonRenderer2, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from config.schema import EXAMPLE_PERSON  # the import also registers the security schemes with drf-spectacular
from subjects.identity import KINDS


class SubjectReferenceScheme(OpenApiSerializerFieldExtension):
    """A subject reference as an object of an `id` and the identifier kinds (API.md, Subject references), instead
    of a free dictionary: Swagger UI then fills in `email`, not `additionalProp1`."""

    target_class = "config.api.SubjectReferenceField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, object]:
        properties: dict[str, object] = {"id": {"type": "string", "format": "uuid"}}
        properties |= {kind: {"type": "string"} for kind in sorted(KINDS)}
        return {
            "type": "object",
            "properties": properties,
            "minProperties": 1,
            "additionalProperties": False,
            "description": "A subject: its `id`, or identifiers (several at once must all name the same person).",
            "example": EXAMPLE_PERSON,
        }


class OpenApiYamlTextRenderer(OpenApiYamlRenderer):
    """The YAML document as text/plain: what a browser shows in place, where it would download the OpenAPI type."""

    media_type = "text/plain"
    format = "txt"


class BrowserReadsText(DefaultContentNegotiation):
    """A browser (it asks for text/html) gets the schema as text it shows in place: YAML as text/plain, or with
    `?format=json` JSON as application/json. Any other client negotiates as drf-spectacular serves it (YAML as
    application/vnd.oai.openapi first; JSON for `Accept: application/json` or
    `application/vnd.oai.openapi+json`)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        if "text/html" in request.META.get("HTTP_ACCEPT", ""):
            wanted = OpenApiJsonRenderer2 if request.query_params.get("format") == "json" else OpenApiYamlTextRenderer
            renderer = next(r for r in renderers if type(r) is wanted)
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)


class SchemaApi(SpectacularAPIView):
    """/api/schema/: the OpenAPI document, readable in a browser too (BrowserReadsText)."""

    renderer_classes = [*SpectacularAPIView.renderer_classes, OpenApiYamlTextRenderer]
    content_negotiation_class = BrowserReadsText
