"""Reindex: re-project the store's current resources into the search index, online and resumable.

`micdr reindex` and the background reindex of a newly registered SearchParameter both run
`reindex`. Per type it pages through the store (`ResourceScan.scan`, id order), projects each page
with `indexing.project.project` (the same projection the workers run) and writes it through the
index's rebuild (`SearchIndex.begin_rebuild` / `rebuild_write` / `finish_rebuild`):

- Elasticsearch fills a new physical index `<alias>-v<N+1>` and swaps the alias, then catches up
  what writers changed in the old index meanwhile;
- SQLite rewrites the type's rows batch by batch, one transaction each (an equal version is
  rewritten, a newer one written meanwhile is kept).

The server keeps serving and writing throughout. After every batch a checkpoint (the run's
types, the type in progress, the last id written and the index's rebuild state) is saved
atomically; a run started with the same types continues from it, and a finished run deletes it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.store.port import ResourceScan
from indexing.engines.port import SearchIndex
from indexing.project import project
from indexing.registry import SearchParamRegistry

__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoint",
    "ReindexReport",
    "reindex",
    "select_types",
]

log = logging.getLogger("micdr.reindex")

CHECKPOINT_FILE = "reindex-checkpoint.json"
SCAN_PAGE = 500

Progress = Callable[[str, int], None]


@dataclass
class Checkpoint:
    """Where a reindex run is: saved after every batch, deleted when the run completes."""

    types: list[str]
    done: list[str] = field(default_factory=list)
    current: str | None = None
    after_id: str | None = None
    engine: dict[str, Any] | None = None
    written: int = 0

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            log.warning("ignoring unreadable reindex checkpoint %s: %s", path, error)
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)


@dataclass(frozen=True)
class ReindexReport:
    types: tuple[str, ...]
    written: int  # index operations this run wrote (live resources and tombstones)
    caught_up: int  # documents copied from the old index after the swap (Elasticsearch)
    seconds: float
    resumed_from: str | None = None  # "Type after id" when the run continued a checkpoint

    @property
    def per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


async def select_types(
    store: ResourceScan,
    registry: SearchParamRegistry,
    types: Sequence[str] = (),
    params: Sequence[str] = (),
) -> list[str]:
    """The types to reindex: `types` (default: every type the store holds) narrowed to those
    having one of `params` (a code or a canonical url). Raises ValueError for a parameter no
    type knows."""
    present = await store.resource_types()
    chosen = sorted(set(types)) if types else present
    chosen = [t for t in chosen if t in present]
    if params:
        known = {
            t: {code for code in registry.for_type(t)}
            | {p.url for p in registry.for_type(t).values()}
            for t in chosen
        }
        unknown = [p for p in params if not any(p in names for names in known.values())]
        if unknown:
            raise ValueError(
                f"no search parameter {', '.join(unknown)} on the types reindexed"
                f" ({', '.join(chosen) or 'none in the store'})"
            )
        chosen = [t for t in chosen if any(p in known[t] for p in params)]
    return chosen


async def reindex(
    store: ResourceScan,
    index: SearchIndex,
    registry: SearchParamRegistry,
    types: Sequence[str],
    *,
    checkpoint: Path | None = None,
    page: int = SCAN_PAGE,
    on_type: Progress | None = None,
    on_progress: Progress | None = None,
) -> ReindexReport:
    """Rebuild the index documents of `types` from the store (see the module docstring).

    `on_type(type, live resources)` is called when a type starts, `on_progress(type, n)` after
    each batch of n resources. With `checkpoint`, a saved run over the same types resumes."""
    started = time.monotonic()
    state = Checkpoint.load(checkpoint) if checkpoint is not None else None
    resumed_from = None
    if state is None or state.types != list(types):
        state = Checkpoint(types=list(types))
    elif state.current is not None:
        resumed_from = f"{state.current} after {state.after_id or 'the start'}"
    caught_up = 0
    written = 0
    for resource_type in types:
        if resource_type in state.done:
            continue
        resuming = state.current == resource_type
        if on_type is not None:
            on_type(resource_type, await store.count(resource_type))
        engine = await index.begin_rebuild(resource_type, state.engine if resuming else None)
        if not resuming or engine != state.engine:
            state.after_id = None  # a new rebuild (the saved one was gone): from the start
        state.current, state.engine = resource_type, engine
        if checkpoint is not None:
            state.save(checkpoint)
        while batch := await store.scan(resource_type, state.after_id, page):
            await index.rebuild_write(engine, project(registry, batch))
            state.after_id = batch[-1].id
            state.written += len(batch)
            written += len(batch)
            if checkpoint is not None:
                state.save(checkpoint)
            if on_progress is not None:
                on_progress(resource_type, sum(1 for r in batch if not r.deleted))
        caught_up += await index.finish_rebuild(engine)
        state.done.append(resource_type)
        state.current, state.after_id, state.engine = None, None, None
        if checkpoint is not None:
            state.save(checkpoint)
        log.info("reindexed %s", resource_type)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return ReindexReport(tuple(types), written, caught_up, time.monotonic() - started, resumed_from)
