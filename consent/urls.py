from django.urls import path

from consent import views

urlpatterns = [
    path("confirm/<str:token>", views.confirm_page, name="confirm"),
    path("u/<path:token>", views.unsubscribe_page, name="unsubscribe"),
]
