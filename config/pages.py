"""The page Django answers when it cannot read a request at all (its handler400): a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS, a broken multipart body. Under /api/ a
problem (RFC 9457); elsewhere a page a person can read, in place of Django's bare "Bad Request (400)"."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.api import ProblemResponse, problem


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    too_large = isinstance(exception, RequestDataTooBig)
    status = 413 if too_large else 400
    if request.path.startswith("/api/"):
        if too_large:
            return ProblemResponse(problem(413, "Request too large", "the request body is too large", "too_large"))
        return ProblemResponse(problem(400, "Malformed request", "the request could not be read", "malformed"))
    back = "/admin/" if request.path.startswith("/admin/") else "/portal/"
    return render(request, "bad_request.html", {"too_large": too_large, "back": back}, status=status)
