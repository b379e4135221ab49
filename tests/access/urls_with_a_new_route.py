"""The project's URLs and one route nobody wrote a row for: the access matrix must notice."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def forgotten(request: HttpRequest) -> HttpResponse:
    return HttpResponse("open to anyone")


urlpatterns = [
    path("", include("config.urls")),
    path("api/v1/forgotten", forgotten),
]
