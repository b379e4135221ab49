"""Fixtures of the rights tests: a catalogue with five sources, an API caller, a real worker with a short lease."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.celery import app
from tests.api import Api
from tests.catalogue import rights_catalogue as rights_catalogue_document
from tests.factories import apply_catalogue
from tests.integration.conftest import Worker

LEASE_SECONDS = "3"


@pytest.fixture
def rights_catalogue(db: None) -> dict[str, Any]:
    """The rights tests' catalogue (tests/catalogue.py), applied."""
    return apply_catalogue(rights_catalogue_document())


@pytest.fixture
def rapi(rights_catalogue: dict[str, Any], make_client: Callable[..., str]) -> Api:
    return Api(make_client())


@pytest.fixture
def rapi_for(rights_catalogue: dict[str, Any], make_client: Callable[..., str]) -> Callable[..., Api]:
    def build(*scopes: str, purposes: tuple[str, ...] = ()) -> Api:
        return Api(make_client(*scopes, purposes=purposes))

    return build


@pytest.fixture
def rights_worker(transactional_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """A real worker whose part leases last a few seconds, so the crash test need not wait long."""
    monkeypatch.setenv("ASSENT_RIGHTS_LEASE_SECONDS", LEASE_SECONDS)
    app.control.purge()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    worker = Worker(mail_dir, tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
