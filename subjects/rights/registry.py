"""Which handler runs which part of which kind of request. Parts are pluggable per source: a connector (a later
issue) adds its own part name and handler here. The workflow engine imports no handler: its callers (the Celery
task, the tests) give it `handler_for`."""

from __future__ import annotations

from subjects.models import RightsRequest
from subjects.rights import erasure, objection, rectification, restriction
from subjects.rights.access.finish import access_finish
from subjects.rights.access.parts import access_consent, access_profile, access_source
from subjects.rights.connector import connector_part
from subjects.rights.context import CONNECTOR_PART, CONSENT, FINISH, PROFILE, SOURCE, Handler

Kind = RightsRequest.Kind

_EXPORT: dict[str, Handler] = {
    CONNECTOR_PART: connector_part,
    SOURCE: access_source,
    PROFILE: access_profile,
    CONSENT: access_consent,
    FINISH: access_finish,
}
_HANDLERS: dict[str, dict[str, Handler]] = {
    Kind.ACCESS.value: _EXPORT,
    Kind.PORTABILITY.value: _EXPORT,
    Kind.ERASURE.value: {
        CONNECTOR_PART: connector_part,
        SOURCE: erasure.erasure_source,
        PROFILE: erasure.erasure_profile,
        CONSENT: erasure.erasure_consent,
        FINISH: erasure.erasure_finish,
    },
    Kind.RECTIFICATION.value: {
        PROFILE: rectification.rectification_profile,
        FINISH: rectification.rectification_finish,
    },
    Kind.RESTRICTION.value: {PROFILE: restriction.restriction_profile, FINISH: restriction.restriction_finish},
    Kind.OBJECTION.value: {CONSENT: objection.objection_consent, FINISH: objection.objection_finish},
}


def handler_for(kind: str, part: str) -> Handler:
    key = SOURCE if part.startswith(SOURCE) else CONNECTOR_PART if part.startswith(CONNECTOR_PART) else part
    try:
        return _HANDLERS[kind][key]
    except KeyError:
        raise LookupError(f"no handler for part {part!r} of a {kind} request") from None
