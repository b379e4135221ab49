"""Sending a short text message, through the backend named by ASSENT_SMS_BACKEND (a dotted path).

- `ConsoleBackend`: writes the message to standard output (the demo; like Django's console mail backend).
- `LocmemBackend`: keeps messages in `outbox` (tests).
- `DisabledBackend`: refuses; the default outside the demo until an operator names a real provider's backend.
A backend raises SmsError when the message could not be handed over."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class SmsError(Exception):
    """The message could not be sent."""


@dataclass(frozen=True, slots=True)
class Sms:
    to: str  # E.164
    text: str


class SmsBackend(Protocol):
    def send(self, message: Sms) -> None: ...


outbox: list[Sms] = []


class ConsoleBackend:
    def send(self, message: Sms) -> None:
        sys.stdout.write(f"SMS to {message.to}:\n{message.text}\n{'-' * 40}\n")
        sys.stdout.flush()


class LocmemBackend:
    def send(self, message: Sms) -> None:
        outbox.append(message)


class DisabledBackend:
    def send(self, message: Sms) -> None:
        raise SmsError("no SMS backend is configured (ASSENT_SMS_BACKEND)")


def sms_send(*, to: str, text: str) -> None:
    backend: SmsBackend = import_string(settings.ASSENT_SMS_BACKEND)()
    backend.send(Sms(to, text))
