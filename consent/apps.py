"""The consent app: the consent ledger, its catalogue, the gates and the API; it fills subjects' ports."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = _("Consent")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # subjects core acts on consent data (a merge, a split) only through this port: it never imports consent.
        from consent.adapters.merge_port import ConsentPortImpl
        from subjects.ports import register_consent_port

        register_consent_port(ConsentPortImpl())

        # ... and rights requests (access, erasure, objection) through this one.
        from consent.adapters.rights_port import ConsentRightsPortImpl
        from subjects.ports import register_consent_rights_port

        register_consent_rights_port(ConsentRightsPortImpl())

        # ... and the rights workflow writes its events to the outbox through this one.
        from consent.adapters.outbox_port import OutboxPortImpl
        from subjects.ports import register_outbox_port

        register_outbox_port(OutboxPortImpl())

        # ... and connectors post to connected systems through this one (the webhooks' URL rules and signing).
        from consent.adapters.connector_port import ConnectorTransportImpl
        from subjects.ports import register_connector_transport_port

        register_connector_transport_port(ConnectorTransportImpl())

        # The services enqueue tasks by name (consent.task_names); registering the task module here lets that name
        # reach the task itself in this process too, so the demo's eager mode runs it as it did.
        import consent.tasks  # noqa: F401
