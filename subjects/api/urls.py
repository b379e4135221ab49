from django.urls import path

from subjects.api import views

urlpatterns = [path("records", views.RecordIngestApi.as_view(), name="record-ingest")]
