"""The project's own app: start-up hooks that belong to no domain app."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.apps import DefaultConfig as OtpTotpDefaultConfig

from config.db import configure_psycopg


class ProjectConfig(AppConfig):
    name = "config"
    label = "assent_config"  # "config" says nothing in `apps.get_app_config()` and the admin

    def ready(self) -> None:
        configure_psycopg()
        # Connected here, in every web and worker process: request ids into tasks, a line per task, the worker's
        # heartbeat and failure count (config.requestlog, config.ops).
        from config import ops, requestlog  # noqa: F401


class TwoFactorDevicesConfig(OtpTotpDefaultConfig):
    """django-otp's TOTP devices under a name staff can read ("OTP_TOTP" said nothing in the admin)."""

    verbose_name = _("Two-factor devices")

    def ready(self) -> None:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from config.otp_labels import totp_device_labels

        totp_device_labels(TOTPDevice)
