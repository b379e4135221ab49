"""Where subjects core must act on consent data it calls these ports; `consent` fills them in ready().
subjects never imports consent (checked by import-linter)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol


class ConsentPort(Protocol):
    def on_merge(self, *, survivor_id: uuid.UUID, absorbed_id: uuid.UUID, now: datetime) -> None:
        """Close the absorbed chain with a `merged` event referenced from the survivor's chain, merge consent
        states to the most restrictive, move read and send logs. Runs in the merge's transaction."""

    def on_split(self, *, survivor_id: uuid.UUID, restored_id: uuid.UUID, now: datetime) -> None:
        """Undo on_merge: both chains get an event, each side's states are rebuilt from its own events."""


class _Unset:
    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the consent port is not registered (is 'consent' in INSTALLED_APPS?)")


consent: ConsentPort = _Unset()  # type: ignore[assignment]


def register_consent_port(port: ConsentPort) -> None:
    global consent
    consent = port
