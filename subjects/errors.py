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
