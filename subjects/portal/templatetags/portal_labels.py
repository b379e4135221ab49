"""Words for the codes the portal shows: actions, sources, request kinds and states, in the person's language."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

register = template.Library()

ACTIONS: dict[str, Promise] = {
    "grant": _("Consent given"),
    "withdraw": _("Consent withdrawn"),
    "confirm": _("Confirmed by e-mail"),
    "object": _("Objection"),
    "expire": _("Consent expired"),
    "merged": _("Records merged"),
    "split": _("Records separated"),
    "erased": _("Erased"),
}
SOURCES: dict[str, Promise] = {
    "portal": _("Privacy centre"),
    "double-opt-in": _("Confirmation link in an e-mail"),
    "unsubscribe-link": _("Unsubscribe link in an e-mail"),
    "admin": _("Our data protection team"),
    "gpc": _("Your browser's privacy signal (GPC)"),
    "rights-request": _("Your rights request"),
    "import": _("Import from an earlier system"),
}
KINDS: dict[str, Promise] = {
    "access": _("Copy of my data"),
    "portability": _("My data to take elsewhere"),
    "erasure": _("Erasure"),
    "rectification": _("Correction"),
    "restriction": _("Restriction of processing"),
    "objection": _("Objection"),
}
STATUSES: dict[str, Promise] = {
    "received": _("Received"),
    "verified": _("Identity verified"),
    "awaiting_approval": _("Waiting for our data protection officer"),
    "processing": _("In progress"),
    "completed": _("Completed"),
    "rejected": _("Rejected"),
    "failed": _("Delayed: we are working on it"),
}
EVENTS: dict[str, Promise] = {
    **STATUSES,
    "approved": _("Approved by our data protection officer"),
    "extended": _("Deadline extended"),
    "person_told": _("We wrote to you"),
    "lift_requested": _("Restriction to be lifted"),
    "lifted": _("Restriction lifted"),
    "overdue": _("Overdue"),
    "reminded": _("Reminder sent to our team"),
}
LEGAL_BASES: dict[str, Promise] = {
    "consent": _("your consent (Art. 6(1)(a) GDPR)"),
    "legitimate_interest": _("our legitimate interest (Art. 6(1)(f) GDPR)"),
    "contract": _("our contract with you (Art. 6(1)(b) GDPR)"),
    "legal_obligation": _("a legal obligation (Art. 6(1)(c) GDPR)"),
}


@register.filter
def action_label(code: str) -> str:
    return str(ACTIONS.get(code, code))


@register.filter
def source_label(code: str, names: dict[str, str] | None = None) -> str:
    if code in SOURCES:
        return str(SOURCES[code])
    return (names or {}).get(code, code)


@register.filter
def kind_label(code: str) -> str:
    return str(KINDS.get(code, code))


@register.filter
def status_label(code: str) -> str:
    return str(STATUSES.get(code, code))


@register.filter
def event_label(code: str) -> str:
    return str(EVENTS.get(code, code))


@register.filter
def basis_label(code: str) -> str:
    return str(LEGAL_BASES.get(code, code))


@register.filter
def channel_names(channels: object) -> str:
    """`E-Mail, SMS` from a purpose's channel choices."""
    names = [getattr(c, "name", str(c)) for c in channels] if isinstance(channels, list | tuple) else []
    return ", ".join(names)


@register.simple_tag
def controller_name() -> str:
    """The retailer's name (ASSENT_CONTROLLER_NAME), for mails, which a worker renders without a request."""
    return str(settings.ASSENT_CONTROLLER_NAME)
