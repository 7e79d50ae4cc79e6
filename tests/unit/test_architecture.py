"""docs/architecture.md's tree against the real tree: every path it names exists, and every
package folder and top-level module of app/, indexing/ and workers/ is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _tree() -> list[tuple[int, str]]:
    text = DOC.read_text()
    block = text.split("## Tree", 1)[1].split("```", 2)[1]
    entries = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if match and (match.group(2).endswith("/") or match.group(2).endswith(".py")):
            entries.append((len(match.group(1)), match.group(2)))
    return entries


def _paths() -> set[str]:
    """Full relative paths of the tree's entries (indentation = nesting, 2 spaces a level)."""
    stack: list[str] = []
    paths = set()
    for indent, name in _tree():
        depth = indent // 2
        stack = [*stack[:depth], name]
        paths.add("".join(stack).rstrip("/"))
    return paths


def test_every_path_in_the_tree_exists() -> None:
    missing = sorted(p for p in _paths() if not (ROOT / p).exists())
    assert missing == []


def test_every_package_folder_and_top_level_module_is_named() -> None:
    named = _paths()
    actual = set()
    for package in ("app", "indexing", "workers"):
        for child in (ROOT / package).iterdir():
            if child.name.startswith(("_", ".")):
                continue
            is_package = child.is_dir() and (child / "__init__.py").exists()
            is_app_module = package == "app" and child.suffix == ".py"
            if is_package or is_app_module:
                actual.add(f"{package}/{child.name}")
    assert sorted(actual - named) == []
