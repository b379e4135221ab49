from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubjectsConfig(AppConfig):
    name = "subjects"
    verbose_name = _("People and rights requests")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the rights workflow's Celery tasks in every process (it lives below an app's `tasks` module,
        # where autodiscovery does not look): services enqueue them by name (subjects.rights.enqueue), and a
        # registered task keeps its options and runs in process in eager mode (the demo).
        from subjects.rights import tasks  # noqa: F401
