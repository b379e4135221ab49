"""The scope check fails closed: a view that declares no scope is open to no API client, whatever it holds; a client
without the scope is told which one it lacks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from rest_framework.views import APIView

from config.api import HasScope, ScopeMissingError
from tests.factories import ALL_SCOPES


class Scoped(APIView):
    required_scope = "consent:check"


class Forgotten(APIView):
    pass


def request_of(*scopes: str) -> Any:
    return SimpleNamespace(auth=SimpleNamespace(scopes=frozenset(scopes)))


def test_a_client_needs_the_scope_the_view_declares() -> None:
    assert HasScope().has_permission(request_of("consent:check"), Scoped())
    assert not HasScope().has_permission(SimpleNamespace(auth=None), Scoped())


def test_a_client_without_the_scope_is_refused_naming_it() -> None:
    with pytest.raises(ScopeMissingError) as refused:
        HasScope().has_permission(request_of("consent:write"), Scoped())

    assert refused.value.scope == "consent:check"
    assert "consent:check" in str(refused.value.detail)


def test_a_view_without_a_declared_scope_is_open_to_no_client() -> None:
    assert not HasScope().has_permission(request_of(*ALL_SCOPES), Forgotten())
