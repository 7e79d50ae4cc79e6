"""The layering rules of STYLE.md, checked by walking every module's imports with `ast`, so they
cannot drift: each engine or framework is imported only where its adapter lives, and the pure
core (app/fhir, app/tx, app/ig, indexing outside engines/) defines no `async` function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "indexing", "workers")

# module prefix -> the only files (relative paths, or folder prefixes ending in /) allowed to
# import it
ALLOWED: dict[str, tuple[str, ...]] = {
    "litestar": ("app/http/", "app/interactions/", "app/main.py", "app/lifespan.py"),
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
PURE = ("app/fhir/", "app/tx/", "app/ig/", "indexing/")
PURE_EXCEPT = ("indexing/engines/",)


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(rel: str, places: tuple[str, ...]) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in places)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engines_and_frameworks_are_imported_only_by_their_adapters(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(), filename=rel)
    breaches = sorted(
        name
        for name in _imports(tree)
        for prefix, places in ALLOWED.items()
        if (name == prefix or name.startswith(prefix + ".")) and not _allowed(rel, places)
    )
    assert breaches == [], f"{rel} imports {breaches}, allowed only in {ALLOWED}"


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in _modules()
        if _allowed(str(p.relative_to(ROOT)), PURE)
        and not _allowed(str(p.relative_to(ROOT)), PURE_EXCEPT)
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_pure_core_defines_no_async_function(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(), filename=rel)
    found = [n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
    assert found == [], f"{rel} is pure core but defines async {found}"
