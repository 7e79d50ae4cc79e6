"""The repository needs nothing beside it: no file of the project reads or cites a folder next to
the checkout or an absolute path of somebody's machine, and the data the tests read is inside it
(tests/data/README.md). `.ci/run` proves the same thing end to end from a bare clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests._data import DATA, IG_EPISODES, SYNTHEA

SELF = Path(__file__).resolve()  # its examples are breaches on purpose
ROOT = SELF.parents[2]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".json"}
TEXT_NAMES = {"run", "test", "Dockerfile", ".gitignore", ".dockerignore"}

SIBLING = "sha" + "red"  # in pieces, so that the patterns below read well
FORBIDDEN = {
    "a folder beside the checkout": re.compile(
        r"\.\./" + SIBLING + r"\b|[\"']" + SIBLING + r"[\"']\s*/"
    ),
    "the developers' shared notes or data": re.compile(
        SIBLING + r"/(data|DESIGN\.md|IG\.md|STYLE\.md)"
    ),
    "an upper-case design note outside the repository": re.compile(
        r"(?<![\w/])(DESIGN|IG|STYLE)\.md\b"
    ),
    "an absolute path of a machine": re.compile(r"(?<![\w.~-])/(work|root|home|Users)/"),
}


def _project_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    files = []
    for name in listed:
        path = ROOT / name
        if name.startswith("tests/data/") or path == SELF or not path.is_file():
            continue  # vendored data is checked for being present, not for what it says
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            files.append(path)
    return files


def test_the_checker_sees_the_project() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _project_files()}
    assert {"README.md", "app/settings.py", ".ci/run", "scripts/test"} <= names


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "see ../" + SIBLING + "/IG.md",
            ["a folder beside the checkout", "the developers' shared notes or data"],
        ),
        ("DATA = REPO.parent / '" + SIBLING + "' / 'data'", ["a folder beside the checkout"]),
        (SIBLING + "/data/synthea-r4", ["the developers' shared notes or data"]),
        ("as DESIGN.md says", ["an upper-case design note outside the repository"]),
        ('Path("/work/x/data")', ["an absolute path of a machine"]),
        ("bench/work/ is ignored; docs/design.md and docs/ig.md are ours", []),
    ],
)
def test_the_patterns_catch_what_they_name(text: str, reason: list[str]) -> None:
    assert [name for name, pattern in FORBIDDEN.items() if pattern.search(text)] == reason


def test_no_project_file_reaches_outside_the_repository() -> None:
    breaches = [
        f"{path.relative_to(ROOT)}:{n}: {reason}: {line.strip()}"
        for path in _project_files()
        for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1)
        for reason, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]
    assert breaches == []


def test_the_test_data_is_in_the_repository() -> None:
    assert DATA.is_relative_to(ROOT)
    assert [p.name for p in IG_EPISODES] == ["episode-1.json", "episode-2.json", "episode-3.json"]
    assert len(SYNTHEA) == 16
    assert (DATA / "synthea-r4" / "LICENSE").is_file()
    assert (DATA / "synthea-r4" / "NOTICE").is_file()
