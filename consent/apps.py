from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # subjects core acts on consent data (a merge, a split) only through this port: it never imports consent.
        from consent.merging import ConsentPortImpl
        from subjects.ports import register_consent_port

        register_consent_port(ConsentPortImpl())

        # ... and rights requests (access, erasure, objection) through this one.
        from consent.rights import ConsentRightsPortImpl
        from subjects.ports import register_consent_rights_port

        register_consent_rights_port(ConsentRightsPortImpl())
