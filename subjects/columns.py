"""Every column encrypted under a subject's data key, in one place: the re-encryption pass walks this list, and the
column name here is the one in the value's associated data (subject id || column || 0x00 || row id).

A new encrypted column adds one EncryptedColumn here and passes `row_id=` to encrypt_field/decrypt_field.
Models are named by label, not imported: the consent app's columns are listed too, and subjects never imports
consent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    model: str  # app label . model name
    field: str  # the BinaryField holding the ciphertext
    column: str  # the name bound into the associated data; never change it once values exist
    subject_field: str = "subject_id"  # whose data key encrypts it (and whose id is in the associated data)
    # Rows that need `SET LOCAL <setting> = 'on'` before they may be updated (an append-only ledger's trigger).
    update_guard: str | None = None


SUBJECT_PROFILE = "subject.profile"
IDENTIFIER_VALUE = "identifier.value"
RECORD_DATA = "linked_record.data"
AUDIT_ABSORBED_PROFILE = "merge_audit.absorbed_profile"
AUDIT_SURVIVOR_PROFILE = "merge_audit.survivor_profile"
REQUEST_DETAILS = "rights_request.details"
EVENT_EVIDENCE = "consent_event.evidence"
CONFIRMATION_EMAIL = "confirmation.email"
IDENTIFIER_CHANGE_VALUE = "identifier_change.value"
# Not under a data key (so not in COLUMNS): a retained record is sealed under its retention vault key, with the
# row id and this name as associated data (rights/erasure.py).
RETAINED_RECORD_DATA = "retained_record.data"
# Not under a data key either: an erasure's completion mail addresses, under the subject's mail vault key.
REQUEST_MAIL_TO = "rights_request.mail_to"

COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("subjects.Subject", "profile_enc", SUBJECT_PROFILE, subject_field="id"),
    EncryptedColumn("subjects.Identifier", "value_enc", IDENTIFIER_VALUE),
    EncryptedColumn("subjects.LinkedRecord", "data_enc", RECORD_DATA),
    EncryptedColumn("subjects.MergeAudit", "absorbed_profile_enc", AUDIT_ABSORBED_PROFILE, subject_field="survivor_id"),
    EncryptedColumn("subjects.MergeAudit", "survivor_profile_enc", AUDIT_SURVIVOR_PROFILE, subject_field="survivor_id"),
    EncryptedColumn("subjects.RightsRequest", "details_enc", REQUEST_DETAILS),
    EncryptedColumn("consent.ConsentEvent", "evidence_enc", EVENT_EVIDENCE, update_guard="assent.ledger_retention"),
    EncryptedColumn("consent.Confirmation", "email_enc", CONFIRMATION_EMAIL),
    EncryptedColumn("subjects.IdentifierChange", "value_enc", IDENTIFIER_CHANGE_VALUE),
)
