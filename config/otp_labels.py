"""django-otp's TOTP device model in the staff member's language. django-otp writes its model's names and help
texts as plain English strings, which no catalogue can translate; they are replaced here by lazy translations of
the same English (config/locale/de holds the German). Only the model's `_meta` and the fields' labels change:
its migrations state (`original_attrs`, the fields' deconstructed arguments) keeps the English, so no migration
follows."""

from __future__ import annotations

from django.db.models import Model
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

# field -> (label, help text): the help texts are django-otp's own English, word for word.
TOTP_FIELDS: dict[str, tuple[Promise, Promise | None]] = {
    "user": (_("user"), _("The user that this device belongs to.")),
    "name": (_("name"), _("The human-readable name of this device.")),
    "confirmed": (_("confirmed"), _("Is this device ready for use?")),
    "key": (_("key"), _("A hex-encoded secret key of up to 40 bytes.")),
    "step": (_("step"), _("The time step in seconds.")),
    "t0": (_("t0"), _("The Unix time at which to begin counting steps.")),
    "digits": (_("digits"), _("The number of digits to expect in a token.")),
    "tolerance": (_("tolerance"), _("The number of time steps in the past or future to allow.")),
    "drift": (_("drift"), _("The number of time steps the prover is known to deviate from our clock.")),
    "last_t": (
        _("last t"),
        _("The t value of the latest verified token. The next token must be at a higher time step."),
    ),
    "created_at": (_("created at"), _("The date and time when this device was initially created in the system.")),
    "last_used_at": (_("last used at"), _("The most recent date and time this device was used.")),
    "throttling_failure_timestamp": (
        _("throttling failure timestamp"),
        _("A timestamp of the last failed verification attempt. Null if last attempt succeeded."),
    ),
    "throttling_failure_count": (_("throttling failure count"), _("Number of successive failed attempts.")),
}


def totp_device_labels(model: type[Model]) -> None:
    """The TOTP device's names and field labels as lazy translations (called once, from the app's ready())."""
    meta = model._meta
    meta.verbose_name = _("TOTP device")
    meta.verbose_name_plural = _("TOTP devices")
    for name, (label, help_text) in TOTP_FIELDS.items():
        field = meta.get_field(name)
        field.verbose_name = label  # type: ignore[union-attr]
        if help_text is not None:
            field.help_text = help_text  # type: ignore[union-attr]
