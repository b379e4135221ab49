"""What the API answers a request it cannot route or take: 404, 405 and 413, always as problem details."""

from __future__ import annotations

from typing import Any

from tests.api import Api, assert_problem

CHECK = "/api/v1/consents/check"
BULK = "/api/v1/consents/check-bulk"


def test_an_unknown_route_under_the_api_is_a_404_problem(api: Api) -> None:
    for path in ("/api/v1/nothing-here", "/api/v2/consents", "/api/"):
        response = api.get(path)

        assert_problem(response, 404, "not_found")


def test_a_body_over_the_size_limit_is_a_413_problem(api: Api, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    references = [{"email": f"p{i}@example.de"} for i in range(1_000)]

    response = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": references})

    assert_problem(response, 413, "too_large")


def test_a_wrong_method_is_a_405_problem(api: Api) -> None:
    assert_problem(api.get(CHECK), 405, "method_not_allowed")
