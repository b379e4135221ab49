"""What the rights engine stored in English (history notes, an erasure's result, a part's state), in the staff
member's language. The API and the raw result keep the English; the request's page shows it translated. Our own
sentences are msgids (subjects.rights.texts names them); the ones that carry a value are read back by pattern;
anything else (what a connected system said, a law's name) stays as written."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import get_language, gettext, gettext_lazy, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from subjects.rights import texts
from subjects.rights.context import CONNECTOR_PART, CONSENT, FINISH, PROFILE, SOURCE

# Every fixed sentence the engine stores, as a lazy translation of itself.
FIXED = {
    english: gettext_lazy(english)
    for english in (
        texts.NO_DATA_FOUND,
        texts.ACCESS_DONE,
        texts.PORTABILITY_DONE,
        texts.ERASURE_DONE,
        texts.RECTIFICATION_DONE,
        texts.RESTRICTION_DONE,
        texts.OBJECTION_DONE,
        texts.COMPLAINT,
        texts.REJECTED,
        texts.EVIDENCE_STORE,
        texts.EVIDENCE_WHY,
        texts.RETENTION_STORE,
        texts.NOTE_WAITS_FOR_APPROVAL,
        texts.NOTE_LIFT_REQUESTED,
        texts.NOTE_LIFT_TOLD,
        texts.NOTE_LIFT_BLOCKED,
        texts.NOTE_RETRY,
        texts.NOTE_OVERDUE,
        texts.NOTE_DUE_SOON,
        texts.NOTE_REPLAYED,
        texts.KEPT_BY_ASSENT,
        texts.RESTRICT_AT_SOURCE,
        texts.KEPT_BY_SYSTEM,
        texts.RECIPIENTS_NOTE,
        "consent proof",
    )
}
# The notices a "person told" row names (subjects.rights.mails).
NOTICES = {
    "extension": _("of the extension"),
    "rejection": _("of the rejection"),
    "completion": _("of the completion"),
}
# A request's parts (subjects.rights.context): the fixed ones, then one per source and connected system.
PARTS = {PROFILE: _("profile"), CONSENT: _("consents"), FINISH: _("finish")}
CHANNELS = {
    "phone": pgettext_lazy("request channel", "phone"),
    "portal": pgettext_lazy("request channel", "privacy centre"),
    "letter": pgettext_lazy("request channel", "letter"),
    "email": pgettext_lazy("request channel", "e-mail"),
    "api": pgettext_lazy("request channel", "API"),
}


def reader_language() -> str:
    return "de" if (get_language() or "").startswith("de") else "en"


def channel_name(channel: str) -> str:
    return str(CHANNELS.get(channel, channel))


Reader = Callable[[re.Match[str]], str]
PATTERNS: tuple[tuple[re.Pattern[str], Reader], ...] = (
    (
        re.compile(r"(?P<name>.+)" + re.escape(texts.SOURCE_SYSTEM["en"])),
        lambda m: gettext("%(name)s (the source system)") % {"name": m["name"]},
    ),
    (
        re.compile(r"(?P<name>.+)" + re.escape(texts.CONNECTED_SYSTEM["en"])),
        lambda m: gettext("%(name)s (connected system)") % {"name": m["name"]},
    ),
    (
        re.compile(r"channel (?P<channel>[\w.-]+)"),
        lambda m: gettext("channel: %(channel)s") % {"channel": channel_name(m["channel"])},
    ),
    (
        re.compile(r"by (?P<months>\d+) month\(s\) to (?P<until>[\d-]+)"),
        lambda m: (
            ngettext("by %(months)s month to %(until)s", "by %(months)s months to %(until)s", int(m["months"]))
            % {"months": m["months"], "until": texts.date_format(m["until"], reader_language())}
        ),
    ),
    (
        re.compile(r"(?P<count>\d+) part\(s\) failed"),
        lambda m: ngettext("%(count)s part failed", "%(count)s parts failed", int(m["count"])) % {"count": m["count"]},
    ),
)


def stored_text(value: object) -> str:
    """One stored English sentence in the reader's language; a text that is none of ours comes back unchanged."""
    text = str(value or "")
    if text in FIXED:
        return str(FIXED[text])
    if text in NOTICES:
        return str(NOTICES[text])
    for pattern, read in PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return read(match)
    return text


def part_name(name: str, sources: dict[str, str]) -> str:
    """A part as the staff member reads it: "Source: Store tills" for `source:pos`; the key if unknown."""
    if name in PARTS:
        return str(PARTS[name])
    if name.startswith(SOURCE):
        key = name.removeprefix(SOURCE)
        return gettext("source: %(name)s") % {"name": sources.get(key, key)}
    if name.startswith(CONNECTOR_PART):
        key = name.removeprefix(CONNECTOR_PART)
        return gettext("connected system: %(name)s") % {"name": sources.get(key, key)}
    return name
