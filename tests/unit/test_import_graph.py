"""The layering checker (tests/unit/_import_graph.py) on made-up module trees, so the project's
layering test cannot pass because the checker sees nothing."""

from __future__ import annotations

from pathlib import Path

from tests.unit._import_graph import (
    Import,
    Layer,
    cycle_path,
    find_cycles,
    forbidden_imports,
    import_graph,
    layer_of,
)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def graph_of(root: Path, files: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
    graph = import_graph(tree(root, files), ["pkg"])
    return {m: [(i.target, i.line) for i in imports] for m, imports in graph.items()}


def edges(*pairs: tuple[str, str]) -> dict[str, list[Import]]:
    graph: dict[str, list[Import]] = {}
    for line, (source, target) in enumerate(pairs, start=1):
        graph.setdefault(source, []).append(Import(source, target, line))
        graph.setdefault(target, [])
    return graph


def test_every_form_of_import_names_the_deepest_project_module(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from . import core\n",
        "pkg/core/__init__.py": "",
        "pkg/core/values.py": "X = 1\n",
        "pkg/core/rules.py": (
            "import json\n"
            "import pkg.core.values as v\n"
            "from pkg.core import values\n"
            "from pkg.core.values import X\n"
            "from . import values as again\n"
            "from .values import X as Y\n"
            "from .. import edge\n"
            "from ..edge import thing\n"
            "from pkg.core import NAME_IN_INIT\n"
            "\n"
            "def later():\n"
            "    import pkg.edge\n"
        ),
        "pkg/edge.py": "import os\nfrom pkg.core.rules import later\n",
    }
    assert graph_of(tmp_path, files) == {
        "pkg": [("pkg.core", 1)],
        "pkg.core": [],
        "pkg.core.values": [],
        "pkg.core.rules": [
            ("pkg.core.values", 2),
            ("pkg.core.values", 3),
            ("pkg.core.values", 4),
            ("pkg.core.values", 5),
            ("pkg.core.values", 6),
            ("pkg.edge", 7),
            ("pkg.edge", 8),
            ("pkg.core", 9),
            ("pkg.edge", 12),
        ],
        "pkg.edge": [("pkg.core.rules", 2)],
    }


def test_a_cycle_through_a_function_local_import_is_found(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "import pkg.c\n",
        "pkg/c.py": "def f():\n    from pkg.a import thing\n",
        "pkg/d.py": "import pkg.a\n",
    }
    cycles = find_cycles(import_graph(tree(tmp_path, files), ["pkg"]))
    assert [cycle_path(c) for c in cycles] == ["pkg.a:1 -> pkg.b:1 -> pkg.c:2 -> pkg.a"]


def test_each_cycle_of_a_tangle_is_reported_once() -> None:
    graph = edges(("b", "a"), ("a", "b"), ("c", "b"), ("b", "c"), ("a", "z"))
    assert [cycle_path(c) for c in find_cycles(graph)] == ["a:2 -> b:1 -> a", "b:4 -> c:3 -> b"]


def test_an_acyclic_graph_has_no_cycle() -> None:
    graph = edges(("a", "b"), ("b", "c"), ("a", "c"), ("d", "a"))
    assert find_cycles(graph) == []


LAYERS = (
    Layer("entry", ("pkg.cli",), frozenset({"core", "adapter", "composition"})),
    Layer("composition", ("pkg.deploy",), frozenset({"core", "adapter"})),
    Layer("adapter", ("pkg.store.sql",), frozenset({"core"})),
    Layer("other adapter", ("pkg.store.sql.other",), frozenset({"core"})),
    Layer("core", ("pkg",), frozenset()),
)


def test_a_module_belongs_to_its_longest_matching_name() -> None:
    assert [
        layer.name if (layer := layer_of(m, LAYERS)) else None
        for m in ("pkg.store.sql.other.x", "pkg.store.sql", "pkg.store.sqlite", "pkg", "else")
    ] == ["other adapter", "adapter", "core", "core", None]


def test_a_forbidden_direction_is_reported_and_an_allowed_one_passes() -> None:
    imports = [
        Import("pkg.cli", "pkg.deploy", 1),  # entry -> composition: allowed
        Import("pkg.deploy", "pkg.store.sql", 2),  # composition -> adapter: allowed
        Import("pkg.store.sql", "pkg.values", 3),  # adapter -> core: allowed
        Import("pkg.values", "pkg.rules", 4),  # within a layer: allowed
        Import("pkg.values", "pkg.store.sql.driver", 5),  # core -> adapter
        Import("pkg.store.sql", "pkg.deploy", 6),  # adapter -> composition
        Import("pkg.store.sql", "pkg.store.sql.other", 7),  # adapter -> another adapter
        Import("pkg.store.sql", "elsewhere", 8),  # a module outside every layer
    ]
    assert forbidden_imports(imports, LAYERS) == [
        "pkg.values:5 -> pkg.store.sql.driver: core may not import adapter",
        "pkg.store.sql:6 -> pkg.deploy: adapter may not import composition",
        "pkg.store.sql:7 -> pkg.store.sql.other: adapter may not import other adapter",
        "pkg.store.sql:8 -> elsewhere: elsewhere belongs to no layer",
    ]
