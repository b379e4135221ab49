"""A database that cannot be reached: the check fails closed, as 503 problem details that still say `allowed: false`
(API.md), and so do the bulk check and the write."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from django.db import connections

from consent.catalogue.snapshot import catalogue_forget
from consent.clients import clients_forget_cache
from tests.api import Api, assert_problem
from tests.factories import ConsentFactory

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
BULK = "/api/v1/consents/check-bulk"


def check(api: Api, subject: dict[str, str]) -> object:
    return api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": "sms"})


@pytest.fixture
def database_down(transactional_db: None) -> Iterator[Callable[[], None]]:
    """Points the connection at a port where nothing listens; the real settings come back afterwards."""
    connection = connections["default"]
    saved = {"HOST": connection.settings_dict["HOST"], "PORT": connection.settings_dict["PORT"]}
    placeholder = socket.socket()
    placeholder.bind(("127.0.0.1", 0))  # bound but not listening: every connect is refused
    port = placeholder.getsockname()[1]

    def break_it() -> None:
        connection.close()
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(port)})

    yield break_it
    connection.close()
    connection.settings_dict.update(saved)
    placeholder.close()


@pytest.mark.parametrize("warm", [True, False], ids=["key-cached", "cold"])
def test_check_answers_503_unavailable_when_the_database_is_down(
    api: Api, database_down: Callable[[], None], warm: bool
) -> None:
    # given a granted consent, and a check that worked
    ConsentFactory(email="anna@example.de")
    if warm:
        assert check(api, {"email": "anna@example.de"}).json()["allowed"] is True
    else:
        clients_forget_cache()
        catalogue_forget()

    # when the database goes away
    database_down()
    response = check(api, {"email": "anna@example.de"})

    # then the check denies with 503, and says so in the body
    problem = assert_problem(response, 503, "unavailable")
    assert (problem["allowed"], problem["reason"]) == (False, "unavailable")
    assert response["Retry-After"]


def test_bulk_check_and_write_answer_503_when_the_database_is_down(api: Api, database_down: Callable[[], None]) -> None:
    ConsentFactory(email="anna@example.de")

    database_down()
    bulk = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": [{"email": "anna@example.de"}]})
    written = api.post(
        CONSENTS,
        {
            "subject": {"email": "anna@example.de"},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "withdraw",
            "source": "webshop",
        },
    )

    assert assert_problem(bulk, 503, "unavailable")["allowed"] is False
    assert_problem(written, 503, "unavailable")
