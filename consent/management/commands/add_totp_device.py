from __future__ import annotations

import io
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.admin.staff import staff_totp_device_create


class Command(BaseCommand):
    help = (
        "Give a staff member a TOTP device for the admin's two-factor sign-in and print its setup link and QR code "
        "once (scan it with an authenticator app). Further devices can be added in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="a name for the device")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()._default_manager
        user = users.filter(**{get_user_model().USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        if not getattr(user, "is_staff", False):
            raise CommandError(f"{options['username']!r} is not a staff member (set is_staff first)")
        device = staff_totp_device_create(user=user, name=options["name"])
        url = device.config_url
        try:
            import qrcode

            qr = qrcode.QRCode(border=1)
            qr.add_data(url)
            out = io.StringIO()
            qr.print_ascii(out=out, invert=True)
            self.stdout.write(out.getvalue())
        except ImportError:
            pass
        self.stdout.write(f"device {device.pk} added for {options['username']}; setup link (shown this once):")
        self.stdout.write(url)
