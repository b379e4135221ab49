"""Calling the API in tests as another service would: JSON in, JSON (or RFC 9457 problem details) out."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

PROBLEM = "application/problem+json"


class Api:
    """Calls the API as another service would: JSON in, JSON (or problem details) out."""

    def __init__(self, key: str | None) -> None:
        self.http = APIClient()
        self.key = key

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
        if self.key:
            out["HTTP_AUTHORIZATION"] = f"Bearer {self.key}"
        return out

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.http.post(path, json.dumps(body), content_type="application/json", **self._headers(headers))

    def post_raw(self, path: str, raw: bytes | str, content_type: str = "application/json") -> Any:
        return self.http.post(path, raw, content_type=content_type, **self._headers(None))

    def get(self, path: str) -> Any:
        return self.http.get(path, **self._headers(None))


def assert_problem(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The response is a problem document with this status and code (and, if given, an error on `field`)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["title"]
    assert problem["detail"]
    if field is not None:
        assert field in problem.get("errors", {}), problem
    return problem
