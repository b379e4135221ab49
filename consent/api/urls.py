from django.urls import path

from consent.api import gates, views

urlpatterns = [
    path("consents", views.ConsentCreateApi.as_view(), name="consent-create"),
    path("consents/check", views.ConsentCheckApi.as_view(), name="consent-check"),
    path("consents/check-bulk", views.ConsentCheckBulkApi.as_view(), name="consent-check-bulk"),
    path("subjects/<uuid:subject_id>/consents", views.SubjectConsentsApi.as_view(), name="subject-consents"),
    path(
        "subjects/<uuid:subject_id>/consents/history",
        views.SubjectConsentHistoryApi.as_view(),
        name="subject-consent-history",
    ),
    path("subjects/<uuid:subject_id>/profile", gates.SubjectProfileApi.as_view(), name="subject-profile"),
    path("sends", gates.SendCreateApi.as_view(), name="send-create"),
]
