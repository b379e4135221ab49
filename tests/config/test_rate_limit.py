"""The API's rate limit: per client and minute, over it a 429 problem with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.api import Api, assert_problem

CHECK = "/api/v1/consents/check"


def check(api: Api, subject: dict[str, str]) -> Any:
    return api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": "sms"})


def _clear_of_a_minute_boundary() -> None:
    # The limit counts per client and minute: do not let a window roll over in the middle of the test.
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_the_request_over_the_rate_limit_is_429_with_retry_after(
    api: Api, api_for: Callable[..., Api], settings: Any
) -> None:
    settings.ASSENT_RATE_LIMIT = 3
    other = api_for("consent:check")
    _clear_of_a_minute_boundary()

    answers = [check(api, {"email": "anna@example.de"}).status_code for _ in range(3)]
    over = check(api, {"email": "anna@example.de"})

    assert answers == [200, 200, 200]
    problem = assert_problem(over, 429, "rate_limited")
    assert 1 <= int(over["Retry-After"]) <= 60
    assert problem["retry_after"] == int(over["Retry-After"])
    assert check(other, {"email": "anna@example.de"}).status_code == 200  # the limit is per client
