"""Every route the project serves, read from the URL configuration itself: each URL pattern under config.urls
(includes followed, the admin site's own URLs and every registered ModelAdmin's with them), and each admin action
a ModelAdmin offers (the site-wide ones and its own). The access matrix must have a row for each of these, and
for nothing else."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

ACTION = " action "  # an action's key: "<changelist route> action <name>"


def _walk(patterns: Sequence[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)
        else:  # pragma: no cover - Django has only these two
            raise TypeError(f"unknown URL entry {pattern!r}")


def url_routes() -> set[str]:
    """Every URL pattern, as its full pattern text (`api/v1/requests/<uuid:request_id>/verify`)."""
    routes = list(_walk(get_resolver().url_patterns))
    duplicates = {route for route in routes if routes.count(route) > 1}
    assert not duplicates, f"two URL patterns with the same text: {duplicates}"
    return set(routes)


def changelist_route(model: type[Any]) -> str:
    return f"admin/{model._meta.app_label}/{model._meta.model_name}/"


def action_routes() -> set[str]:
    """Every admin action: the site's (delete_selected) and each ModelAdmin's own, for every ModelAdmin that offers
    actions at all (`actions = None` offers none)."""
    site_actions = [name for name, _ in admin.site.actions]
    found = set()
    for model, model_admin in admin.site._registry.items():
        if model_admin.actions is None:
            continue
        own = [a if isinstance(a, str) else a.__name__ for a in model_admin.actions]
        for name in (*site_actions, *own):
            found.add(f"{changelist_route(model)}{ACTION}{name}")
    return found


def all_routes() -> set[str]:
    return url_routes() | action_routes()
