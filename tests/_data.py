"""Where the tests' data lives: in the repository itself, so a bare clone runs every test
(tests/data/README.md says what each folder holds and under which licence)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
IG_EPISODES_DIR = DATA / "ig-episodes"
SYNTHEA_DIR = DATA / "synthea-r4"
R4_EXAMPLES_DIR = Path(__file__).resolve().parent / "fixtures" / "r4-examples"

IG_EPISODES = sorted(IG_EPISODES_DIR.glob("episode-*.json"))
SYNTHEA = sorted(SYNTHEA_DIR.glob("*.json"))


def ig_episode_path(n: int) -> Path:
    return IG_EPISODES_DIR / f"episode-{n}.json"
