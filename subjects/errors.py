from __future__ import annotations

from config.errors import ConflictError, InvalidInputError, NotFoundError


class InvalidIdentifierError(InvalidInputError):
    code = "invalid_identifier"
    title = "Invalid identifier"


class InvalidReferenceError(InvalidInputError):
    code = "invalid_subject"
    title = "Invalid subject reference"


class AmbiguousSubjectError(ConflictError):
    code = "ambiguous_subject"
    title = "The reference points to more than one subject"


class SubjectNotFoundError(NotFoundError):
    code = "unknown_subject"
    title = "Unknown subject"


class SubjectErasedError(ConflictError):
    """The id names a person whose data was erased (Art. 17): nothing can be recorded on them any more; a new
    consent or record names the person by identifiers and starts a new subject."""

    code = "subject_erased"
    title = "The subject was erased"
