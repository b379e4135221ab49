"""The OpenAPI schema and its docs: public, complete, and served from this host's own static files."""

from __future__ import annotations

import re
from typing import Any

import yaml
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import URLResolver, get_resolver


def _api_routes(patterns: list[Any], prefix: str = "") -> set[str]:
    """Every path() route of the URL conf under /api/v1/, written the way OpenAPI writes it."""
    routes: set[str] = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes |= _api_routes(pattern.url_patterns, route)
        elif route.startswith("api/v1/"):
            routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def test_the_schema_lists_every_path_without_a_key(db: None) -> None:
    response = Client().get("/api/schema/")

    assert response.status_code == 200, response.content
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    routes = _api_routes(get_resolver().url_patterns)
    assert {
        "/api/v1/consents",
        "/api/v1/consents/check",
        "/api/v1/consents/check-bulk",
        "/api/v1/subjects/{subject_id}/consents",
        "/api/v1/subjects/{subject_id}/consents/history",
    } <= routes
    assert routes <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/v1/consents/check"]
    assert "get" in schema["paths"]["/api/v1/subjects/{subject_id}/consents/history"]


def test_the_docs_serve_swagger_ui_from_local_static_files(db: None) -> None:
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert not re.search(r"(?:https?:)?//(?!testserver)[\w.-]+\.[a-z]{2,}/", html), "the page loads from another host"
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among the static files"
