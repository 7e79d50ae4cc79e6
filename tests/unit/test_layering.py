"""The layering rules (docs/layering.md), checked by reading every module's imports with `ast`,
so they cannot drift:

- no import cycle between the project's modules;
- every import between them goes in an allowed direction (LAYERS below): the pure core imports
  nothing with I/O, an adapter imports ports and the pure core only, and only entry points
  import the composition package;
- each engine or framework is imported only where its adapter lives (THIRD_PARTY), and the pure
  core defines no `async` function.

The checker itself is tested on made-up trees in tests/unit/test_import_graph.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit._import_graph import (
    Layer,
    cycle_path,
    find_cycles,
    forbidden_imports,
    import_graph,
    layer_of,
    module_files,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "indexing", "workers", "bench")

PURE = frozenset({"pure core", "settings"})
PORTS = PURE | {"port"}
ADAPTERS = frozenset(
    {
        "SQLite store",
        "MongoDB store",
        "SQLite index",
        "Elasticsearch index",
        "job runner",
        "SQLite file",
        "local export files",
        "MongoDB export files",
    }
)
ASSEMBLED = PORTS | ADAPTERS | {"application"}  # what the composition package puts together

# A module belongs to the layer naming it, or the longest name above it, and may import its own
# layer and those listed. Adapters are one layer each, so one never imports another.
LAYERS = (
    # the arq worker's entry joins the entry points once it is a module of its own
    Layer("entry point", ("app.cli", "app.main"), ASSEMBLED | {"composition"}),
    Layer("composition", ("app.deploy",), ASSEMBLED),
    Layer("benchmark", ("bench",), PORTS | ADAPTERS),  # a dev tool: measures raw engines too
    Layer("application", ("app", "workers"), PORTS),  # http, interactions, jobs, commands
    Layer("SQLite store", ("app.store.sqlite",), PORTS | {"SQLite file"}),
    Layer("MongoDB store", ("app.store.mongo", "app.store.mongo_submission"), PORTS),
    Layer("SQLite index", ("indexing.engines.sqlite",), PORTS | {"SQLite file"}),
    Layer("Elasticsearch index", ("indexing.engines.elasticsearch",), PORTS),
    Layer("local export files", ("app.bulk.local",), PORTS),
    Layer("MongoDB export files", ("app.bulk.mongo",), PORTS),
    # The JobQueue's two adapters also execute the jobs they queue, so they import the job
    # functions (application) besides ports; never another engine's adapter.
    Layer("job runner", ("workers.arq_settings", "workers.inprocess"), PORTS | {"application"}),
    Layer("SQLite file", ("indexing.engines.sqlite_file",), frozenset()),
    Layer(
        "port",  # protocols, their errors and values, external names
        (
            "app.store.port",
            "app.store.names",
            "app.bulk.port",
            "indexing.engines.port",
            "indexing.engines.names",
            "workers.keys",
            "workers.port",
        ),
        PURE,
    ),
    Layer(
        "pure core",
        (
            "app.records",
            "app.bulk",
            "app.fhir",
            "app.tx",
            "app.ig",
            "app.security.access",
            "app.security.audit",
            "app.security.limits",
            "app.security.scopes",
            "app.security.tokens",
            "app.subscriptions",
            "indexing",
        ),
        frozenset({"settings"}),
    ),
    Layer("settings", ("app.settings",), frozenset()),  # the parsed MICDR_* values
)

# module prefix -> the only files (relative paths, or folder prefixes ending in /) allowed to
# import it; the benchmark is left out (it bulk-loads the engines to measure their own limit)
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "litestar": ("app/http/", "app/interactions/", "app/main.py"),
    "pymongo": ("app/store/mongo.py",),
    "motor": (),
    "sqlite3": (
        "app/store/sqlite.py",
        "indexing/engines/sqlite/",
        "indexing/engines/sqlite_file.py",
        "workers/inprocess.py",
    ),
    "elasticsearch": ("indexing/engines/elasticsearch/",),
    "arq": ("workers/arq_settings.py",),
    "redis": ("workers/arq_settings.py",),
}

GRAPH = import_graph(ROOT, PACKAGES)
FILES = module_files(ROOT, PACKAGES)


def _rel(module: str) -> str:
    return str(FILES[module].relative_to(ROOT))


def _in_layer(name: str) -> list[str]:
    return sorted(m for m in FILES if (layer := layer_of(m, LAYERS)) and layer.name == name)


def test_the_layer_table_names_only_its_own_layers() -> None:
    names = {layer.name for layer in LAYERS}
    assert len(names) == len(LAYERS)
    assert sorted({n for layer in LAYERS for n in layer.may_import} - names) == []


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in FILES if layer_of(m, LAYERS) is None] == []


def test_no_import_cycle_between_project_modules() -> None:
    cycles = [cycle_path(cycle) for cycle in find_cycles(GRAPH)]
    assert cycles == [], "import cycles (module:line of its import of the next):\n" + "\n".join(
        cycles
    )


@pytest.mark.parametrize("module", sorted(GRAPH), ids=_rel)
def test_imports_go_in_an_allowed_direction(module: str) -> None:
    breaches = forbidden_imports(GRAPH[module], LAYERS)
    assert breaches == [], f"{_rel(module)}:\n" + "\n".join(breaches)


def _third_party(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(rel: str, places: tuple[str, ...]) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in places)


@pytest.mark.parametrize("module", sorted(m for m in FILES if not m.startswith("bench")), ids=_rel)
def test_engines_and_frameworks_are_imported_only_by_their_adapters(module: str) -> None:
    rel = _rel(module)
    tree = ast.parse(FILES[module].read_text(), filename=rel)
    breaches = sorted(
        name
        for name in _third_party(tree)
        for prefix, places in THIRD_PARTY.items()
        if (name == prefix or name.startswith(prefix + ".")) and not _allowed(rel, places)
    )
    assert breaches == [], f"{rel} imports {breaches}, allowed only in {THIRD_PARTY}"


@pytest.mark.parametrize("module", _in_layer("pure core"), ids=_rel)
def test_the_pure_core_defines_no_async_function(module: str) -> None:
    tree = ast.parse(FILES[module].read_text(), filename=_rel(module))
    found = [n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
    assert found == [], f"{_rel(module)} is pure core but defines async {found}"
