"""A catalogue file as validation reads it (API.md, "Catalogue file"): the typed specification that applying
writes, and the error that names every problem of a file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config.errors import InvalidInputError
from config.names import Name


class CatalogueError(InvalidInputError):
    code = "catalogue_invalid"
    title = "Invalid catalogue"

    def __init__(self, errors: str | Sequence[str]) -> None:
        problems = [errors] if isinstance(errors, str) else list(errors)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}" if problems else "the catalogue is invalid")
        self._problems = problems

    @property  # every problem, each naming its place; not the per-field dict of other domain errors
    def errors(self) -> list[str]:  # type: ignore[override]
        return list(self._problems)


@dataclass(frozen=True, slots=True)
class NoticeSpec:
    """A purpose's notice version and its texts per language."""

    version: str
    requires_reconsent: bool
    texts: dict[str, str]


@dataclass(frozen=True, slots=True)
class PurposeSpec:
    """One purpose as the file declares it; `place` is where it stands in the file."""

    place: str
    key: str
    name: Name
    legal_basis: str
    marketing: bool
    channels: tuple[str, ...]
    data_categories: tuple[str, ...]
    double_opt_in: tuple[str, ...]
    consent_valid_days: int | None
    uwg_7_3: bool
    notice: NoticeSpec | None
    dpv: str
    automated_decision: Name
    gpc: bool
    tcf_purposes: tuple[int, ...]
    reads_device_identifiers: bool


@dataclass(frozen=True, slots=True)
class HoldingSpec:
    """How long a source keeps a data category, and the legal hold that may keep it longer."""

    category: str
    delete_after_days: int
    hold_years: int | None
    hold_from: str
    hold_law: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    key: str
    name: Name
    system_of_record: bool
    categories: tuple[HoldingSpec, ...]
    connector: dict[str, Any] | None = None  # API.md, "Connectors": validated, stored as given


@dataclass(frozen=True, slots=True)
class CatalogueSpec:
    """A whole catalogue file that passed validation."""

    merge_identifiers: tuple[str, ...]
    channels: dict[str, Name]  # key -> name
    categories: dict[str, tuple[Name, bool, bool]]  # key -> (name, profile, purchase)
    purposes: tuple[PurposeSpec, ...]
    sources: tuple[SourceSpec, ...]
