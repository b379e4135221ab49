"""Words the DPO's pages show for stored codes, in the staff member's language: a request's kind (its model's
label), a mail's kind."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from subjects.models import RightsRequest

MAIL_KINDS: dict[str, Promise] = {
    "confirmation": _("double opt-in confirmation"),
    "signin": _("portal sign-in link"),
}


def label(labels: dict[str, Promise], code: str) -> str:
    """The label of a code, or the code itself when a newer one has no label yet."""
    return str(labels.get(code, code))


def request_kind_label(kind: str) -> str:
    """A rights request's kind as the queue names it ("Access (Art. 15)")."""
    try:
        return str(RightsRequest.Kind(kind).label)
    except ValueError:  # a kind no longer defined: shown as stored
        return kind
