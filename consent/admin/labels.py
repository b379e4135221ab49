"""Words the DPO's pages show for stored codes (a request's kind, a mail's kind), in the staff member's language."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

REQUEST_KINDS: dict[str, Promise] = {
    "access": _("Access (Art. 15)"),
    "portability": _("Portability (Art. 20)"),
    "erasure": _("Erasure (Art. 17)"),
    "rectification": _("Rectification (Art. 16)"),
    "restriction": _("Restriction (Art. 18)"),
    "objection": _("Objection (Art. 21)"),
}
MAIL_KINDS: dict[str, Promise] = {
    "confirmation": _("double opt-in confirmation"),
    "signin": _("portal sign-in link"),
}


def label(labels: dict[str, Promise], code: str) -> str:
    """The label of a code, or the code itself when a newer one has no label yet."""
    return str(labels.get(code, code))
