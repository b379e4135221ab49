"""The finish step of an access or portability request: gather the parts' pieces, write the zip, complete the
request with a summary (and the pieces go after commit)."""

from __future__ import annotations

from django.utils import timezone

from subjects.models import RightsRequest
from subjects.rights import texts
from subjects.rights.access.gather import Gathered, gather
from subjects.rights.access.write import Written, write_zip
from subjects.rights.context import PartContext, request_complete
from subjects.rights.exports import export_record, files_remove_on_commit


def access_finish(context: PartContext) -> None:
    gathered = gather(context, now=timezone.now())
    written = write_zip(context, gathered)
    access_complete(context, gathered, written)


def access_complete(context: PartContext, gathered: Gathered, written: Written) -> None:
    request = context.request
    categories = gathered.categories
    summary = {
        "records": sum(c["count"] for c in categories.values()),
        "categories": sorted(categories),
        "sources": sorted({s for c in categories.values() for s in c["sources"]}),
        "identifiers": len(gathered.identifiers),
        "consent_events": gathered.events,
        "recipients": len(gathered.consent["recipient"]),
    }
    portability = request.kind == RightsRequest.Kind.PORTABILITY
    message = (
        texts.NO_DATA_FOUND if not gathered.data_found else texts.PORTABILITY_DONE if portability else texts.ACCESS_DONE
    )
    with context.step():
        export = export_record(
            request=request, subject=context.subject(), kid=written.kid, size=written.size, now=gathered.now
        )
        result = {
            "data_found": gathered.data_found,
            "message": message,
            "export": {"size": written.size, "files": written.files, "expires_at": export.expires_at.isoformat()},
            "summary": summary,
        }
        request_complete(context, result)
        files_remove_on_commit(export_ids=[], request_ids=[request.id])
