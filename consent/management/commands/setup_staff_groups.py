from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from consent.admin.staff import DPO, SUPPORT, staff_groups_setup


class Command(BaseCommand):
    help = 'Create or update the staff groups "DPO" (everything) and "Support" (requests and subjects, read-only).'

    def handle(self, *args: Any, **options: Any) -> None:
        result = staff_groups_setup()
        self.stdout.write(
            f"{DPO}: {result.dpo_permissions} permissions; {SUPPORT}: {result.support_permissions} permissions"
        )
