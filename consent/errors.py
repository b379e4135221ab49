from __future__ import annotations

from config.errors import ConflictError, DomainError, InvalidInputError, NotFoundError, UnavailableError


class PurposeUnknownError(InvalidInputError):
    code = "purpose_unknown"
    title = "Unknown purpose"


class ChannelUnknownError(InvalidInputError):
    code = "channel_unknown"
    title = "Unknown channel"


class ChannelNotPermittedError(InvalidInputError):
    code = "channel_not_permitted"
    title = "The purpose does not use this channel"


class NoticeUnknownError(InvalidInputError):
    code = "notice_unknown"
    title = "Unknown notice version"


class EmailRequiredError(InvalidInputError):
    code = "email_required"
    title = "Double opt-in needs an e-mail address"


class EmailNotLinkedError(ConflictError):
    code = "email_not_linked"
    title = "The e-mail address is not one of the subject's"


class EvidenceRequiredError(InvalidInputError):
    code = "evidence_required"
    title = "A confirmation by the client needs evidence"


class ReservedSourceError(InvalidInputError):
    code = "source_reserved"
    title = "Reserved source"


class NothingToConfirmError(ConflictError):
    code = "nothing_to_confirm"
    title = "Nothing waits for confirmation"


class IdempotencyConflictError(ConflictError):
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with another request"


class ForbiddenPurposeError(DomainError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class PolicyDeniedError(DomainError):
    code = "policy_denied"
    status = 403
    title = "Denied by policy"


class ConfirmationInvalidError(NotFoundError):
    code = "confirmation_invalid"
    title = "This confirmation link is not valid"


def undecidable() -> UnavailableError:
    """API.md: a decision that cannot be made now answers 503 with `allowed: false, reason: unavailable`."""
    return UnavailableError("cannot decide now", allowed=False, reason="unavailable")
