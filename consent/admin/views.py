"""Admin pages beyond the model pages: the DPO's dashboard and the Art. 30 records of processing export."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe

from consent.admin.audit import Action, audit_record
from consent.admin.charts import Line, bar_chart, rate_chart
from consent.admin.dashboard import (
    consent_rates,
    outdated_notice_consents,
    request_summary,
    undelivered_mails,
    webhook_health,
)
from consent.admin.records_of_processing import records_as_csv, records_as_json, records_of_processing
from consent.ledger.verification import verification_latest

DEFAULT_WEEKS = 12


def dashboard_view(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    try:
        weeks = max(4, min(52, int(request.GET.get("weeks", DEFAULT_WEEKS))))
    except ValueError:
        weeks = DEFAULT_WEEKS
    by_purpose: dict[str, list[Any]] = defaultdict(list)
    for series in consent_rates(now=now, weeks=weeks):
        by_purpose[series.purpose].append(series)
    charts = []
    for purpose, all_series in by_purpose.items():
        labels = [p.week.strftime("%d.%m.") for p in all_series[0].points]
        lines = [Line(s.channel, [p.rate for p in s.points]) for s in all_series]
        charts.append(
            {
                "purpose": purpose,
                # Built from escaped parts only (consent.admin.charts escapes every label).
                "svg": mark_safe(rate_chart(title=f"{purpose}: consent rate by week", labels=labels, lines=lines)),
                "series": all_series,
            }
        )
    queue = request_summary(now=now)
    median_svg = mark_safe(
        bar_chart(title="Median days to complete, by kind", bars=list(queue.median_days.items()), unit=" d")
    )
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "charts": charts,
        "weeks": weeks,
        "outdated": outdated_notice_consents(),
        "queue": queue,
        "median_svg": median_svg,
        "verification": verification_latest(),
        "undelivered": undelivered_mails(),
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
    records = records_of_processing(now=now)
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
