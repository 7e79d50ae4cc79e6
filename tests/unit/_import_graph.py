"""The project's own module import graph, read with `ast`, and the two checks run on it:
import cycles, and imports against a table of layers (tests/unit/test_layering.py holds the
table; tests/unit/test_import_graph.py checks these functions on made-up trees).

Every import counts: top level or inside a function, `import a.b`, `from a import b`,
`from . import b`, `from ..a import b`. An import names the deepest project module it loads
(`from app.fhir import meta` is `app.fhir.meta`; `from app.fhir.meta import with_meta` is
`app.fhir.meta`); modules outside the given packages are left out."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Import:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


Graph = Mapping[str, Sequence[Import]]


@dataclass(frozen=True)
class Layer:
    """`modules`: names that belong to it, each with everything under it; a module belongs to
    the layer with the longest matching name. `may_import`: the other layers its modules may
    import (a layer may always import itself)."""

    name: str
    modules: tuple[str, ...]
    may_import: frozenset[str]


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every `.py` under the packages (`a/__init__.py` is `a`)."""
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _deepest(name: str, modules: Mapping[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> list[Import]:
    """The project modules `module` (read from `path`) imports, one entry per import and
    target, in line order; a module importing itself is left out."""
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]).split(".")
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str | None]
        if isinstance(node, ast.Import):
            targets = [_deepest(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]  # `.` is the package itself
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [
                f"{base}.{alias.name}"
                if f"{base}.{alias.name}" in modules
                else _deepest(base, modules)
                for alias in node.names
            ]
        else:
            continue
        found.extend(
            Import(module, target, node.lineno)
            for target in dict.fromkeys(targets)
            if target is not None and target != module
        )
    return sorted(found, key=lambda i: (i.line, i.target))


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, list[Import]]:
    modules = module_files(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: Graph) -> list[list[Import]]:
    """The import cycles, [] when there is none: inside each group of modules that import each
    other (a strongly connected component of more than one module), the shortest cycle through
    each of its modules, as the imports that make it, starting from its first module by name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for edge in graph.get(module, ()):
            if edge.target not in index:
                visit(edge.target)
                low[module] = min(low[module], low[edge.target])
            elif edge.target in on_stack:
                low[module] = min(low[module], index[edge.target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    cycles: dict[tuple[Import, ...], None] = {}
    for group in groups:
        for module in sorted(group):
            cycle = _shortest_cycle(graph, group, module)
            first = min(range(len(cycle)), key=lambda i: cycle[i].source)
            cycles[tuple(cycle[first:] + cycle[:first])] = None
    return sorted(list(cycle) for cycle in cycles)


def _shortest_cycle(graph: Graph, group: set[str], start: str) -> list[Import]:
    """The shortest way from `start` back to itself, inside its group."""
    came_by: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for edge in sorted(graph.get(module, ())):
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                if edge.target in group and edge.target not in came_by:
                    came_by[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"{start} is on no cycle of {sorted(group)}")


def cycle_path(cycle: Sequence[Import]) -> str:
    """`a:3 -> b:7 -> a`: each module with the line of its import of the next."""
    return " -> ".join([*(f"{i.source}:{i.line}" for i in cycle), cycle[0].source])


def layer_of(module: str, layers: Sequence[Layer]) -> Layer | None:
    matches = [
        (len(name), layer)
        for layer in layers
        for name in layer.modules
        if module == name or module.startswith(name + ".")
    ]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def forbidden_imports(imports: Iterable[Import], layers: Sequence[Layer]) -> list[str]:
    """Each import whose source layer may not import its target's layer, said in one line."""
    breaches = []
    for edge in imports:
        source, target = layer_of(edge.source, layers), layer_of(edge.target, layers)
        if source is None or target is None:
            missing = edge.source if source is None else edge.target
            breaches.append(f"{edge}: {missing} belongs to no layer")
        elif target.name != source.name and target.name not in source.may_import:
            breaches.append(f"{edge}: {source.name} may not import {target.name}")
    return breaches
