from django.urls import path

from subjects.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.signin, name="signin"),
    path("sent", views.signin_sent, name="sent"),
    path("signin/<str:token>", views.signin_with_link, name="signin-link"),
    path("signout", views.signout, name="signout"),
    path("preferences", views.preferences, name="preferences"),
    path("history", views.history, name="history"),
    path("history/<uuid:event_id>/receipt", views.history_receipt, name="history-receipt"),
    path("rights", views.rights, name="rights"),
    path("rights/copy", views.rights_copy, name="rights-copy"),
    path("rights/erasure", views.rights_erasure, name="rights-erasure"),
    path("rights/rectification", views.rights_rectification, name="rights-rectification"),
    path("rights/rectification/code", views.address_code, name="address-code"),
    path("address/<uuid:change_id>/<str:token>", views.address_link, name="address-link"),
    path("rights/restriction", views.rights_restriction, name="rights-restriction"),
    path("rights/objection", views.rights_objection, name="rights-objection"),
    path("rights/<str:request_id>", views.request_detail, name="request"),
    path("rights/<str:request_id>/export", views.request_export, name="request-export"),
]
