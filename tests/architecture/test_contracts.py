"""The project's import-linter contract types, on tiny graphs: a hand-built one and a package written to disk."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

from tests.architecture.contracts import (
    NoCyclesContract,
    NoPrivateNamesContract,
    is_private_name,
    strongly_connected_components,
)


def _graph(*imports: tuple[str, str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for line_number, (importer, imported, line) in enumerate(imports, start=1):
        graph.add_import(importer=importer, imported=imported, line_number=line_number, line_contents=line)
    return graph


@pytest.mark.parametrize(
    ("successors", "components"),
    [
        ({"a": ["b"], "b": []}, []),
        ({"a": ["b"], "b": ["a"]}, [["a", "b"]]),
        ({"a": ["a"]}, [["a"]]),
        ({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}, [["a", "b", "c"]]),
        ({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c", "a"]}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_strongly_connected_components_finds_each_cycle_once(
    successors: dict[str, list[str]], components: list[list[str]]
) -> None:
    assert strongly_connected_components(successors) == components


def test_strongly_connected_components_survives_a_chain_deeper_than_the_recursion_limit() -> None:
    chain = {f"m{i}": [f"m{i + 1}"] for i in range(5000)}
    chain["m5000"] = ["m0"]
    assert len(strongly_connected_components(chain)[0]) == 5001


def _cycles_contract(**options: object) -> NoCyclesContract:
    return NoCyclesContract(name="cycles", session_options={"root_packages": ["pkg"]}, contract_options=options)


CYCLE = (
    ("pkg.a", "pkg.b", "from pkg.b import x"),
    ("pkg.b", "pkg.c", "from pkg.c import y"),
    ("pkg.c", "pkg.a", "    from pkg.a import z"),  # inside a function: a cycle all the same
    ("pkg.d", "pkg.a", "import pkg.a"),
)


def test_no_cycles_is_broken_by_a_cycle_and_names_its_imports() -> None:
    check = _cycles_contract().check(_graph(*CYCLE), verbose=False)

    assert not check.kept
    [cycle] = check.metadata["cycles"]
    assert cycle.modules == ("pkg.a", "pkg.b", "pkg.c")
    assert [(item.importer, item.imported, item.line_numbers) for item in cycle.imports] == [
        ("pkg.a", "pkg.b", (1,)),
        ("pkg.b", "pkg.c", (2,)),
        ("pkg.c", "pkg.a", (3,)),
    ]


def test_no_cycles_is_kept_once_an_import_of_the_cycle_is_ignored() -> None:
    check = _cycles_contract(ignore_imports=["pkg.c -> pkg.a"]).check(_graph(*CYCLE), verbose=False)

    assert check.kept
    assert check.ignored_import_count == 1


def test_no_cycles_warns_about_an_ignored_import_that_is_gone_when_told_to() -> None:
    contract = _cycles_contract(ignore_imports=["pkg.x -> pkg.y"], unmatched_ignore_imports_alerting="warn")

    check = contract.check(_graph(("pkg.a", "pkg.b", "import pkg.b")), verbose=False)

    assert check.kept
    assert check.warnings


def test_no_cycles_looks_only_at_the_packages_it_covers() -> None:
    graph = _graph(("other.a", "other.b", "import other.b"), ("other.b", "other.a", "import other.a"))

    assert _cycles_contract().check(graph, verbose=False).kept
    assert not _cycles_contract(packages=["other"]).check(graph, verbose=False).kept


@pytest.mark.parametrize(
    ("name", "private"), [("_record", True), ("record", False), ("__version__", False), ("__x", True)]
)
def test_is_private_name(name: str, private: bool) -> None:
    assert is_private_name(name) is private


def _private_contract(**options: object) -> NoPrivateNamesContract:
    return NoPrivateNamesContract(name="private", session_options={"root_packages": ["pkg"]}, contract_options=options)


def test_no_private_names_is_broken_by_a_private_name_from_another_module() -> None:
    graph = _graph(
        ("pkg.a", "pkg.b", "from pkg.b import public, _hidden"),
        ("pkg.c", "pkg.b", "from pkg.b import __version__, public"),
    )

    check = _private_contract().check(graph, verbose=False)

    assert not check.kept
    assert [(item.importer, item.line_number, item.name) for item in check.metadata["illegal"]] == [
        ("pkg.a", 1, "pkg.b._hidden")
    ]


def test_no_private_names_is_kept_when_the_import_is_ignored_and_warns_about_stale_entries() -> None:
    graph = _graph(("pkg.a", "pkg.b", "from pkg.b import _hidden"))

    check = _private_contract(ignore_names=["pkg.a -> pkg.b._hidden", "pkg.z -> pkg.b._gone"]).check(
        graph, verbose=False
    )

    assert check.kept
    assert check.ignored_import_count == 1
    assert check.warnings == ["No private import matches the ignored name pkg.z -> pkg.b._gone."]


def test_no_private_names_reads_a_wrapped_import_and_allows_a_private_module_in_its_own_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fakepkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "b.py": "public = 1\n_hidden = 2\n",
        "sub/__init__.py": "",
        "sub/_inner.py": "value = 1\n",
        "sub/user.py": "from fakepkg.sub import _inner\n",  # inside its own package: allowed
        # Wrapped over lines, inside a function: grimp keeps only "from fakepkg.b import (".
        "a.py": (
            "def f():\n    from fakepkg.b import (\n        public,\n        _hidden,\n    )\n\n\n"
            "import fakepkg.sub._inner\n"
        ),
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("fakepkg", cache_dir=None)
    contract = NoPrivateNamesContract(
        name="private", session_options={"root_packages": ["fakepkg"]}, contract_options={}
    )

    check = contract.check(graph, verbose=False)

    assert [(item.importer, item.line_number, item.name) for item in check.metadata["illegal"]] == [
        ("fakepkg.a", 2, "fakepkg.b._hidden"),
        ("fakepkg.a", 8, "fakepkg.sub._inner"),
    ]
