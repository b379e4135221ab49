from django.urls import path

from subjects.api import requests, views

urlpatterns = [
    path("records", views.RecordIngestApi.as_view(), name="record-ingest"),
    path("records/batch", views.RecordBatchApi.as_view(), name="record-ingest-batch"),
    path("merge-proposals/<uuid:proposal_id>", views.MergeProposalDetailApi.as_view(), name="merge-proposal"),
]

# Rights requests (subjects.rights)
urlpatterns += [
    path("requests", requests.RequestCreateApi.as_view(), name="rights-request-open"),
    path("requests/<uuid:request_id>", requests.RequestDetailApi.as_view(), name="rights-request"),
    path("requests/<uuid:request_id>/verify", requests.RequestVerifyApi.as_view(), name="rights-request-verify"),
    path("requests/<uuid:request_id>/approve", requests.RequestApproveApi.as_view(), name="rights-request-approve"),
    path("requests/<uuid:request_id>/lift", requests.RequestLiftApi.as_view(), name="rights-request-lift"),
    path("requests/<uuid:request_id>/export", requests.RequestExportApi.as_view(), name="rights-request-export"),
    path(
        "requests/<uuid:request_id>/parts/<str:part>/result",
        requests.RequestPartResultApi.as_view(),
        name="rights-request-part-result",
    ),
]
