"""The webhook tests run against the standard catalogue; the receiver and `subscribe` are in tests/conftest.py."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _catalogue(catalogue: dict[str, Any]) -> None:
    pass
