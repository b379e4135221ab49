"""The staff audit log (Art. 32): every admin action and every view of a subject's decrypted data.

An entry names the staff member, the time, the action and the object by type and id; its `detail` holds an
action's name or the names of changed fields, never a value, so the log holds no personal data of subjects.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models, transaction
from django.utils import timezone

from consent.models import AuditEntry

Action = AuditEntry.Action
_DETAIL_MAX = 300


def object_type_of(obj: models.Model | type[models.Model]) -> str:
    return obj._meta.label_lower


@transaction.atomic(savepoint=False)  # joins the caller's transaction: an action and its entry commit together
def audit_record(
    *,
    user: AbstractBaseUser | AnonymousUser,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: object = "",
    detail: str = "",
    at: datetime | None = None,
) -> AuditEntry:
    if obj is not None:
        object_type, object_id = object_type_of(obj), obj.pk
    return AuditEntry.objects.create(**_fields(user, action, object_type, object_id, detail, at or timezone.now()))


@transaction.atomic(savepoint=False)
def audit_record_many(
    *,
    user: AbstractBaseUser | AnonymousUser,
    action: str,
    objects: Iterable[models.Model],
    detail: str = "",
    at: datetime | None = None,
) -> int:
    """One entry per object (a bulk delete, an admin action on a selection)."""
    moment = at or timezone.now()
    rows = [AuditEntry(**_fields(user, action, object_type_of(obj), obj.pk, detail, moment)) for obj in objects]
    AuditEntry.objects.bulk_create(rows)
    return len(rows)


def _fields(
    user: AbstractBaseUser | AnonymousUser, action: str, object_type: str, object_id: object, detail: str, at: datetime
) -> dict[str, object]:
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    authenticated = getattr(user, "is_authenticated", False)
    return {
        "at": at,
        "user_id": user.pk if authenticated else None,
        "username": user.get_username() if authenticated else "",
        "action": action,
        "object_type": object_type,
        "object_id": "" if object_id is None else str(object_id)[:64],
        "detail": detail[:_DETAIL_MAX],
    }


def audit_entries_for(*, object_type: str, object_id: object, limit: int = 50) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type=object_type, object_id=str(object_id)).order_by("-at")[:limit])
