"""Open and close the engines of the configured deployment: the store and the search index
(the API, `micdr worker` and the CLI commands share it).

Embedded: SQLite store and SQLite index, each in its own file (one write lock each), projection
in-process. Full stack: MongoDB store, Elasticsearch index, projection by arq workers on Redis.
The index is derived data: found empty while the store holds resources (its file or its indexes
deleted, a data dir from before the embedded split), `index_lost` tells the serving processes to
rebuild it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.bulk.local import LocalExportFiles
from app.bulk.mongo import MongoExportFiles
from app.bulk.port import ExportFiles
from app.settings import Settings
from app.store.mongo import UNAVAILABLE, MongoResourceStore, connect
from app.store.port import Store, StoreError
from app.store.sqlite import SqliteResourceStore
from indexing.engines.port import EpisodeIndex, SearchIndex
from indexing.engines.sqlite.adapter import SqliteSearchIndex
from indexing.engines.sqlite.episodes import SqliteEpisodeIndex
from indexing.registry import SearchParamRegistry
from workers.arq_settings import ping_redis
from workers.port import QueueUnavailable

log = logging.getLogger("micdr.engines")

__all__ = [
    "UNAVAILABLE",
    "Engines",
    "StartupError",
    "check_engines",
    "export_files",
    "open_engines",
]

EXPORTS_DIR = "exports"


class StartupError(RuntimeError):
    """An engine could not be opened; the message is one line for the operator."""


@dataclass
class Engines:
    store: Store
    index: SearchIndex | None = None
    # the analysts' imaging episodes, beside the search index (docs/index-schema.md)
    episodes: EpisodeIndex | None = None
    registry: SearchParamRegistry = field(default_factory=SearchParamRegistry.load)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


async def _open_mongo(
    settings: Settings, engines_closers: list[Callable[[], Awaitable[None]]]
) -> Store:
    assert settings.mongo_url is not None
    try:
        store, close = await connect(settings.mongo_url, settings.mongo_database)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    engines_closers.append(close)
    return store


async def _open_sqlite_store(settings: Settings) -> Store:
    try:
        return await SqliteResourceStore.open(settings.sqlite_path)
    except Exception as exc:  # OSError or sqlite3.Error: unwritable, corrupt
        raise StartupError(
            f"cannot open the embedded store {settings.sqlite_path}: {exc}"
        ) from None


async def _open_index(settings: Settings, registry: SearchParamRegistry) -> SearchIndex:
    if settings.elasticsearch_url:
        # imported here only: the Elasticsearch client is heavy and the embedded default never
        # needs it
        from indexing.engines.elasticsearch.adapter import ElasticsearchSearchIndex
        from indexing.engines.elasticsearch.mapping import IndexSettings

        try:
            return await ElasticsearchSearchIndex.open(
                settings.elasticsearch_url,
                settings.index_prefix,
                registry,
                settings=IndexSettings(refresh_interval=settings.index_refresh_interval),
            )
        except Exception as exc:
            raise StartupError(
                f"Elasticsearch at {settings.elasticsearch_url} is unreachable: {exc}"
            ) from None
    try:
        return await SqliteSearchIndex.open(settings.sqlite_index_path, registry)
    except Exception as exc:
        raise StartupError(
            f"cannot open the embedded index {settings.sqlite_index_path}: {exc}"
        ) from None


async def _open_episodes(settings: Settings) -> EpisodeIndex:
    if settings.elasticsearch_url:
        from indexing.engines.elasticsearch.episodes import ElasticsearchEpisodeIndex

        try:
            return await ElasticsearchEpisodeIndex.open(
                settings.elasticsearch_url,
                settings.index_prefix,
                settings.index_refresh_interval,
            )
        except Exception as exc:
            raise StartupError(
                f"Elasticsearch at {settings.elasticsearch_url} is unreachable: {exc}"
            ) from None
    try:
        return await SqliteEpisodeIndex.open(settings.sqlite_index_path)
    except Exception as exc:
        raise StartupError(
            f"cannot open the embedded episode index {settings.sqlite_index_path}: {exc}"
        ) from None


async def open_engines(settings: Settings) -> Engines:
    closers: list[Callable[[], Awaitable[None]]] = []
    registry = SearchParamRegistry.load()
    if settings.mongo_url:
        store = await _open_mongo(settings, closers)
    else:
        store = await _open_sqlite_store(settings)
    closers.append(store.close)
    try:
        index = await _open_index(settings, registry)
    except StartupError:
        for close in reversed(closers):
            await close()
        raise
    closers.append(index.close)
    try:
        episodes = await _open_episodes(settings)
    except StartupError:
        for close in reversed(closers):
            await close()
        raise
    closers.append(episodes.close)
    return Engines(store=store, index=index, episodes=episodes, registry=registry, closers=closers)


def export_files(settings: Settings, store: Store) -> ExportFiles:
    """Where exports keep their files: beside the resources in the MongoDB store (every
    process reaches it), else in the data dir."""
    if isinstance(store, MongoResourceStore):
        return MongoExportFiles(store.database)
    return LocalExportFiles(settings.data_dir / EXPORTS_DIR)


async def index_lost(store: Store, index: SearchIndex) -> bool:
    """The index holds nothing, not even a tombstone, while the store holds resources that
    were projected once: not when the store's first commit still waits in the outbox (a new
    deployment whose worker starts after the API took its first writes; projection will
    index them, a rebuild would only race it)."""
    try:
        empty = await index.empty()
    except Exception as exc:  # an index that does not answer yet: writes wait for it anyway
        log.warning("could not tell whether the search index is empty: %s", exc)
        return False
    if not empty or not await store.resource_types():
        return False
    oldest = await store.unindexed(1)
    return not (oldest and oldest[0].seq == 1)


async def check_engines(settings: Settings) -> None:
    """Open and close every configured engine once (the CLI's pre-flight check)."""
    engines = await open_engines(settings)
    try:
        if settings.redis_url:
            try:
                await ping_redis(settings.redis_url)
            except QueueUnavailable as exc:
                raise StartupError(str(exc)) from None
    finally:
        await engines.close()
