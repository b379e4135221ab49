"""import-linter contract types the built-in ones lack (registered in pyproject's [tool.importlinter]).

- `no_cycles`: no import cycle among the modules of the given packages. Imports inside functions count: they
  hide a cycle from the interpreter at import time, not from the design.
- `no_private_names`: no module imports a private name (`_x`) of another module. A private submodule may still be
  imported from within its own parent package (import-linter's `private_modules` rule).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _in_packages(module: str, packages: Iterable[str]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def _contract_packages(contract: Contract, listed: list[str] | None) -> list[str]:
    """The packages a contract covers: those listed, else the session's root packages."""
    return list(listed or contract.session_options.get("root_packages", []))


# --- cycles -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleImport:
    importer: str
    imported: str
    line_numbers: tuple[int, ...]


@dataclass(frozen=True)
class Cycle:
    """A strongly connected component: every module in it reaches every other through imports."""

    modules: tuple[str, ...]
    imports: tuple[CycleImport, ...]


def strongly_connected_components(successors: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (an import chain may be deeper than Python's recursion limit).
    Components come back sorted, each sorted; a module alone counts only if it imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(successors):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(successors[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop(0)
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(successors.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors.get(node, ()):
                    components.append(sorted(component))
    return sorted(components)


def find_cycles(graph: ImportGraph, packages: Iterable[str]) -> list[Cycle]:
    """The import cycles among the modules of `packages`, each with the imports that close it."""
    packages = list(packages)
    modules = [module for module in graph.modules if _in_packages(module, packages)]
    successors = {
        module: {
            imported for imported in graph.find_modules_directly_imported_by(module) if _in_packages(imported, packages)
        }
        for module in modules
    }
    cycles = []
    for component in strongly_connected_components(successors):
        members = set(component)
        imports = tuple(
            CycleImport(
                importer=importer,
                imported=imported,
                line_numbers=tuple(
                    sorted(
                        detail["line_number"]
                        for detail in graph.get_import_details(importer=importer, imported=imported)
                    )
                ),
            )
            for importer in component
            for imported in sorted(successors[importer] & members)
        )
        cycles.append(Cycle(modules=tuple(component), imports=imports))
    return cycles


class NoCyclesContract(Contract):
    """No import cycle among the modules of `packages` (default: the root packages), lazy imports included.

    Options: `packages`; `ignore_imports` (import expressions taken out of the graph first);
    `unmatched_ignore_imports_alerting` (none, warn, error: default error)."""

    type_name = "no_cycles"

    packages = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(
        contract_utils.AlertLevel, default=contract_utils.AlertLevel.ERROR
    )

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[attr-defined]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[attr-defined]
        )
        cycles = find_cycles(graph, _contract_packages(self, self.packages))  # type: ignore[attr-defined]
        return ContractCheck(
            kept=not cycles,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"cycles": cycles},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle among {len(cycle.modules)} modules:", bold=True)
            output.new_line()
            for item in cycle.imports:
                lines = ", ".join(map(str, item.line_numbers))
                output.print_error(f"- {item.importer} -> {item.imported} (l.{lines})", bold=False)
            output.new_line()


# --- private names ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivateImport:
    importer: str
    line_number: int
    name: str  # the full dotted name imported, e.g. consent.services._record

    def key(self) -> str:
        """How an ignore list names this import: `importer -> module.name`."""
        return f"{self.importer} -> {self.name}"


def is_private_name(name: str) -> bool:
    """`_x` is private; dunder names (`__version__`) are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _source_file(module: str) -> Path | None:
    """The module's file, found from its root package's directory without importing anything."""
    root, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(root)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_statement(line_contents: str, source_lines: list[str] | None, line_number: int) -> ast.stmt | None:
    """The import statement at `line_number`. grimp keeps only its first line, so a statement wrapped over several
    lines (`from x import (`) is read on from the source until it parses."""
    candidates = [line_contents.strip()]
    if source_lines:
        candidates = [
            "\n".join(source_lines[line_number - 1 : end]).strip() for end in range(line_number, len(source_lines) + 1)
        ]
    for text in candidates:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        if tree.body and isinstance(tree.body[0], ast.Import | ast.ImportFrom):
            return tree.body[0]
    return None


def _absolute_from(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_names_in(node: ast.stmt, *, importer: str, is_package: bool, modules: set[str]) -> list[str]:
    """The private names (dotted, absolute) an import statement takes from another module. A private submodule
    imported from within its parent package is allowed, as import-linter's `private_modules` allows it."""
    if isinstance(node, ast.Import):
        dotted = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        source = _absolute_from(importer, is_package, node)
        dotted = [f"{source}.{alias.name}" for alias in node.names if alias.name != "*"]
    else:
        return []
    found = []
    for name in dotted:
        parts = name.split(".")
        for position in range(1, len(parts)):
            if not is_private_name(parts[position]):
                continue
            owner, prefix = ".".join(parts[:position]), ".".join(parts[: position + 1])
            if prefix in modules and (importer == owner or importer.startswith(f"{owner}.")):
                continue  # a private module, used inside its own package
            found.append(name)
            break
    return found


def find_private_imports(graph: ImportGraph, packages: Iterable[str]) -> list[PrivateImport]:
    packages = list(packages)
    modules = set(graph.modules)
    found: set[PrivateImport] = set()
    for importer in sorted(module for module in modules if _in_packages(module, packages)):
        source = _source_file(importer)
        source_lines = source.read_text().splitlines() if source else None
        is_package = bool(graph.find_children(importer)) or (source is not None and source.name == "__init__.py")
        seen_lines: set[int] = set()
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                line_number = detail["line_number"]
                if line_number in seen_lines:
                    continue  # `from a import b, c` is one statement behind several imports in the graph
                seen_lines.add(line_number)
                node = import_statement(detail["line_contents"], source_lines, line_number)
                if node is None:
                    continue
                for name in private_names_in(node, importer=importer, is_package=is_package, modules=modules):
                    found.add(PrivateImport(importer=importer, line_number=line_number, name=name))
    return sorted(found, key=lambda item: (item.importer, item.line_number, item.name))


class NoPrivateNamesContract(Contract):
    """No module of `packages` (default: the root packages) imports a private name of another module.

    Options: `packages`; `ignore_names`, entries `importer -> module.name` (an entry that matches nothing is
    reported as a warning)."""

    type_name = "no_private_names"

    packages = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_names = fields.SetField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        ignored: set[str] = set(self.ignore_names or ())  # type: ignore[attr-defined]
        found = find_private_imports(graph, _contract_packages(self, self.packages))  # type: ignore[attr-defined]
        illegal = [item for item in found if item.key() not in ignored]
        unmatched = sorted(ignored - {item.key() for item in found})
        metadata: dict[str, Any] = {"illegal": illegal}
        return ContractCheck(
            kept=not illegal,
            metadata=metadata,
            warnings=[f"No private import matches the ignored name {entry}." for entry in unmatched],
            ignored_import_count=len(found) - len(illegal),
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private names imported from another module:", bold=False)
        output.new_line()
        for item in check.metadata["illegal"]:
            output.print_error(f"- {item.importer} (l.{item.line_number}) imports {item.name}", bold=False)
        output.new_line()
