from django.urls import path

from consent.api import check, consents, profile, receipts, send_jobs, sends, webhooks

urlpatterns = [
    path("consents", consents.ConsentCreateApi.as_view(), name="consent-create"),
    path("consents/check", check.ConsentCheckApi.as_view(), name="consent-check"),
    path("consents/check-bulk", check.ConsentCheckBulkApi.as_view(), name="consent-check-bulk"),
    path("consents/events/<uuid:event_id>/receipt", receipts.ConsentReceiptApi.as_view(), name="consent-receipt"),
    path("subjects/<uuid:subject_id>/consents", consents.SubjectConsentsApi.as_view(), name="subject-consents"),
    path(
        "subjects/<uuid:subject_id>/consents/history",
        consents.SubjectConsentHistoryApi.as_view(),
        name="subject-consent-history",
    ),
    path("subjects/<uuid:subject_id>/profile", profile.SubjectProfileApi.as_view(), name="subject-profile"),
    path("sends", sends.SendCreateApi.as_view(), name="send-create"),
    path("send-jobs", send_jobs.SendJobCreateApi.as_view(), name="send-job-create"),
    path("send-jobs/<uuid:job_id>", send_jobs.SendJobApi.as_view(), name="send-job"),
    path("send-jobs/<uuid:job_id>/result", send_jobs.SendJobResultApi.as_view(), name="send-job-result"),
    path("webhooks", webhooks.WebhookListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<uuid:webhook_id>", webhooks.WebhookEndApi.as_view(), name="webhook-end"),
]
