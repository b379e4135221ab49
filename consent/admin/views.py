"""Admin pages beyond the model pages: the DPO's dashboard and the Art. 30 records of processing export."""

from __future__ import annotations

import json
from collections import defaultdict

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from consent.admin.audit import Action, audit_record
from consent.admin.charts import Line, bar_chart, rate_chart
from consent.admin.dashboard import (
    RateSeries,
    catalogue_names,
    consent_rates,
    outdated_notice_consents,
    request_summary,
    undelivered_mails,
    webhook_health,
)
from consent.admin.labels import MAIL_KINDS, label, request_kind_label
from consent.admin.records_of_processing import records_as_csv, records_as_json, records_of_processing
from consent.ledger.verification import verification_latest

DEFAULT_WEEKS = 12


def dashboard_view(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    try:
        weeks = max(4, min(52, int(request.GET.get("weeks", DEFAULT_WEEKS))))
    except ValueError:
        weeks = DEFAULT_WEEKS
    names = catalogue_names(language=translation.get_language())
    by_purpose: dict[str, list[RateSeries]] = defaultdict(list)
    for series in consent_rates(now=now, weeks=weeks):
        by_purpose[series.purpose].append(series)
    charts = []
    for purpose, all_series in by_purpose.items():
        labels = [p.week.strftime("%d.%m.") for p in all_series[0].points]
        lines = [Line(names.channel(s.channel), [p.rate for p in s.points]) for s in all_series]
        title = _("%(purpose)s: consent rate by week") % {"purpose": names.purpose(purpose)}
        svg = rate_chart(title=title, labels=labels, lines=lines, empty=_("no consents recorded yet"))
        charts.append(
            {
                "purpose": purpose,
                "name": names.purpose(purpose),
                "svg": mark_safe(svg),  # built from escaped parts only (consent.admin.charts escapes every label)
                "rows": [(names.channel(s.channel), s) for s in all_series],
            }
        )
    queue = request_summary(now=now)
    medians = [(request_kind_label(kind), days) for kind, days in queue.median_days.items()]
    median_svg = mark_safe(
        bar_chart(title=_("Median days to complete, by kind"), bars=medians, unit=_(" d"), empty=_("none completed"))
    )
    undelivered = undelivered_mails()
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "charts": charts,
        "weeks": weeks,
        "outdated": [(names.purpose(row.purpose), row) for row in outdated_notice_consents()],
        "queue": queue,
        "open_by_kind": [(request_kind_label(k), n) for k, n in queue.open_by_kind.items()],
        "median_rows": [
            (request_kind_label(k), days, queue.completed_by_kind.get(k, 0)) for k, days in queue.median_days.items()
        ],
        "median_svg": median_svg,
        "verification": verification_latest(),
        "undelivered": undelivered,
        "undelivered_by_kind": [(label(MAIL_KINDS, k), n) for k, n in undelivered.by_kind.items()],
        "undelivered_latest": [(label(MAIL_KINDS, mail.kind), mail) for mail in undelivered.latest],
        "webhooks": webhook_health(now=now),
        "now": now,
    }
    return TemplateResponse(request, "assent_admin/dashboard.html", context)


def records_of_processing_view(request: HttpRequest, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("records of processing come as .csv or .json")
    if not request.user.has_perm("consent.view_purpose"):
        raise PermissionDenied
    now = timezone.now()
    records = records_of_processing(now=now, language=translation.get_language())
    audit_record(
        user=request.user, action=Action.EXPORT, object_type="consent.records_of_processing", detail=f"format {fmt}"
    )
    name = f"records-of-processing-{timezone.localtime(now):%Y-%m-%d}.{fmt}"
    if fmt == "csv":
        response = HttpResponse(records_as_csv(records), content_type="text/csv; charset=utf-8")
    else:
        body = json.dumps(records_as_json(records), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def records_of_processing_page(request: HttpRequest) -> HttpResponse:
    """The records of processing as a page to read, with what the catalogue still has to say."""
    if not request.user.has_perm("consent.view_purpose"):
        raise PermissionDenied
    records = records_of_processing(now=timezone.now(), language=translation.get_language())
    context = {
        **admin.site.each_context(request),
        "title": _("Records of processing activities (Art. 30(1) GDPR)"),
        "records": records,
    }
    return TemplateResponse(request, "assent_admin/records_of_processing.html", context)
