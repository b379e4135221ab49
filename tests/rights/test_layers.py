"""subjects.rights is subjects core: it reaches consent data only through subjects.ports (DESIGN.md, dependency
direction). The import-linter contract in pyproject.toml names the older core modules; this checks the new ones."""

from __future__ import annotations

import ast
from pathlib import Path

import subjects.rights

RIGHTS = Path(subjects.rights.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_subjects_rights_never_imports_consent() -> None:
    for path in sorted(RIGHTS.glob("*.py")):
        offending = {name for name in imported_modules(path) if name == "consent" or name.startswith("consent.")}
        assert not offending, f"{path.name} imports {offending}"


def test_the_chunked_cipher_is_pure() -> None:
    names = imported_modules(RIGHTS / "chunked.py")
    assert not {n for n in names if n.split(".")[0] in ("django", "rest_framework", "celery")}
