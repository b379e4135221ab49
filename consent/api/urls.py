from django.urls import path

from consent.api import check, consents, profile, sends, webhooks

urlpatterns = [
    path("consents", consents.ConsentCreateApi.as_view(), name="consent-create"),
    path("consents/check", check.ConsentCheckApi.as_view(), name="consent-check"),
    path("consents/check-bulk", check.ConsentCheckBulkApi.as_view(), name="consent-check-bulk"),
    path("subjects/<uuid:subject_id>/consents", consents.SubjectConsentsApi.as_view(), name="subject-consents"),
    path(
        "subjects/<uuid:subject_id>/consents/history",
        consents.SubjectConsentHistoryApi.as_view(),
        name="subject-consent-history",
    ),
    path("subjects/<uuid:subject_id>/profile", profile.SubjectProfileApi.as_view(), name="subject-profile"),
    path("sends", sends.SendCreateApi.as_view(), name="send-create"),
    path("webhooks", webhooks.WebhookListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<uuid:webhook_id>", webhooks.WebhookEndApi.as_view(), name="webhook-end"),
]
