"""The episode index adapters as test fixtures, and a seeded set of episode documents.

Shared by tests/contract/test_episode_index.py and the maintenance and API tests."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from indexing.episodes import EpisodeContext, build_episode, mark_repeats
from tests._episodes import (
    ACSN_SYSTEM,
    UPI_SYSTEM,
    order,
    organization,
    patient,
    ref,
    report,
    study,
)
from tests._full_stack import TEST_REFRESH_INTERVAL, unique_name
from tests._services import engine_url

EPISODE_ENGINES = ["sqlite", "elasticsearch"]
SITES = {"hosp-a": "UPI443", "hosp-b": "UPI501"}


async def open_episode_index(
    kind: str, tmp_path: Path
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """(episode index, cleanup) for one engine."""
    if kind == "sqlite":
        from indexing.engines.sqlite.episodes import SqliteEpisodeIndex

        sqlite_index = await SqliteEpisodeIndex.open(tmp_path / "index.sqlite3")
        return sqlite_index, sqlite_index.close
    from indexing.engines.elasticsearch.episodes import ElasticsearchEpisodeIndex

    es_index = await ElasticsearchEpisodeIndex.open(
        engine_url("elasticsearch"), unique_name(), TEST_REFRESH_INTERVAL
    )

    async def cleanup() -> None:
        await es_index.drop()
        await es_index.close()

    return es_index, cleanup


def context(referenced: dict[str, Any]) -> EpisodeContext:
    return EpisodeContext(
        referenced=referenced,
        accession_systems=frozenset({ACSN_SYSTEM}),
        upi_systems=frozenset({UPI_SYSTEM}),
        pseudonym_key=b"test-key",
    )


def _at(month: str, day: int, hour: int, minute: int) -> str:
    return f"2026-{month}-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def seeded_episodes(seed: int = 20, count: int = 120) -> list[dict[str, Any]]:
    """`count` episode documents over three months, two sites, four modalities, six patients,
    with every status; deterministic for a seed."""
    rng = random.Random(seed)
    referenced: dict[str, Any] = {
        f"Organization/{o}": organization(o, upi, o.upper()) for o, upi in SITES.items()
    }
    for p in range(6):
        referenced[f"Patient/p{p}"] = patient(
            f"p{p}",
            rng.choice(["male", "female"]),
            f"19{rng.randint(20, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        )
    docs = []
    for n in range(count):
        day = rng.randint(1, 28)
        month = rng.choice(["09", "10", "11"])
        hour = rng.randint(0, 12)
        at = f"2026-{month}-{day:02d}T{hour:02d}:00:00Z"
        site = rng.choice(sorted(SITES))
        who = f"p{rng.randint(0, 5)}"
        code = rng.choice(["XR-CHEST", "CT-HEAD", "US-ABD"])
        o = order(f"o{n}", f"A{n}", at, code, rng.choice(["active"] * 5 + ["revoked"]), who)
        o["performer"] = [{"reference": f"Organization/{site}"}]
        o["requester"] = {"reference": f"Organization/{site}"}
        members = {ref(o): o}
        stage = rng.random()
        if stage > 0.2:
            s = study(
                f"s{n}",
                f"o{n}",
                f"A{n}",
                _at(month, day, hour + rng.randint(1, 9), rng.randint(0, 59)),
                rng.choice(["DX", "CT", "US", "MR"]),
                who,
            )
            members[ref(s)] = s
        if stage > 0.4:
            status = rng.choice(["final", "final", "preliminary", "amended"])
            r = report(
                f"r{n}",
                f"o{n}",
                f"A{n}",
                _at(month, day, hour + 10 + rng.randint(0, 9), rng.randint(0, 59))
                if status != "amended" or rng.random() < 0.5
                else _at("12", rng.randint(1, 9), 10, 0),  # amended weeks later
                status,
                who,
            )
            members[ref(r)] = r
        if stage > 0.95:  # an episode without its order
            del members[ref(o)]
        docs.append(build_episode(f"ServiceRequest/o{n}", members, context(referenced)))
    return mark_repeats(docs)
