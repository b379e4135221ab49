from django.apps import AppConfig


class PortalConfig(AppConfig):
    """An app of its own only for its templates, static files and translations; it has no models."""

    name = "subjects.portal"
    label = "portal"
    verbose_name = "Self-service portal"
