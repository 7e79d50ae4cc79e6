"""Assemble one process from opened engines: recovery, the registry, the job queue (arq when
MICDR_REDIS_URL is set, else the in-process runner: chosen here, once), and the contexts the
interactions and the jobs run with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app.deploy.engines import Engines, StartupError, export_files, index_lost, open_engines
from app.deploy.heap import settle_heap
from app.fhir.validate import resource_types, validate_resource
from app.ig.rules import IgRules
from app.interactions.context import Services
from app.search_parameters import check_search_parameter, sync_search_parameters
from app.settings import Settings
from app.store.port import StoreError
from app.subscription_topics import sync_topics
from app.subscriptions.subscription import check_written
from app.subscriptions.topics import TopicCatalog
from app.subscriptions.trigger import Criteria
from indexing.alerts import parse_rules
from indexing.registry import SearchParamRegistry
from workers.arq_settings import ArqQueue
from workers.context import JobContext
from workers.inprocess import InProcessQueue
from workers.jobs import STALE_TRANSACTION_SECONDS
from workers.keys import QueueNames
from workers.port import JobQueue, QueueUnavailable

log = logging.getLogger("micdr.deploy")

REGISTRY_SYNC_SECONDS = 10.0  # full stack: how soon other API processes see a new parameter
REINDEX_CHECKPOINT = "reindex-searchparameter.json"

OpenEngines = Callable[[Settings], Awaitable[Engines]]


@dataclass(frozen=True)
class Deployment:
    """One process's adapters and the contexts over them; `close` stops and closes them all."""

    engines: Engines
    queue: JobQueue
    services: Services
    job: JobContext

    async def close(self) -> None:
        await self.engines.close()


async def deploy(settings: Settings, open_with: OpenEngines = open_engines) -> Deployment:
    """Open the engines (`open_with`: tests hand in others, e.g. mongomock) and assemble."""
    engines = await open_with(settings)
    try:
        return await assemble(settings, engines)
    except StoreError as exc:
        await engines.close()
        raise StartupError(f"recovery failed: {exc}") from None
    except BaseException:
        await engines.close()
        raise


@asynccontextmanager
async def deployed(settings: Settings) -> AsyncIterator[Services]:
    """The interactions' context of a CLI command's process, closed on leaving."""
    deployment = await deploy(settings)
    try:
        yield deployment.services
    finally:
        await deployment.close()


async def assemble(
    settings: Settings, engines: Engines, worker_queue: ArqQueue | None = None
) -> Deployment:
    """Recover the store, learn the stored SearchParameters, start the job queue (an arq
    worker hands in its own, over arq's Redis pool: one pool per process), and hand out the
    contexts. An index found empty while the store is not is rebuilt through the queue."""
    assert engines.index is not None, "open_engines always opens an index"
    try:
        parse_rules(settings.alert_rules)
    except ValueError as exc:
        raise StartupError(f"MICDR_ALERT_RULES: {exc}") from None
    await engines.store.recover(STALE_TRANSACTION_SECONDS)
    await sync_search_parameters(engines.store, engines.registry)
    topics = TopicCatalog()
    await sync_topics(engines.store, topics)
    lost = await index_lost(engines.store, engines.index)
    embedded: InProcessQueue | None = None
    queue: JobQueue
    if settings.redis_url:
        queue = worker_queue or await _open_arq(settings.redis_url, settings.mongo_database)
        engines.closers.append(queue.close)
        engines.closers.append(_start_registry_sync(engines))
        if lost:
            log.warning("the search index is empty, the store is not: queued its rebuild")
    else:
        queue = embedded = InProcessQueue(
            settings.data_dir / REINDEX_CHECKPOINT, settings.async_concurrency
        )
        if lost:
            log.warning("the search index is empty, the store is not: rebuilding it from the store")
    if lost:
        await queue.rebuild_lost_index()
    services = Services(
        settings=settings,
        store=engines.store,
        index=engines.index,
        registry=engines.registry,
        validate=_validate_with(engines.registry, topics, settings.subscription_allow_list),
        resource_types=resource_types(),
        queue=queue,
        rules=IgRules.from_settings(settings) if settings.ig_mode else None,
        files=export_files(settings, engines.store),
        episodes=engines.episodes,
        topics=topics,
    )
    job = JobContext(engines.store, engines.index, services, episodes=engines.episodes)
    engines.closers.append(job.outbound.aclose)  # after the runners stop (closed in reverse)
    settle_heap()
    if embedded is not None:
        await embedded.start(job)
        engines.closers.append(embedded.close)
    return Deployment(engines, queue, services, job)


async def _open_arq(url: str, database: str) -> ArqQueue:
    try:
        return await ArqQueue.open(url, QueueNames.for_store(database))
    except QueueUnavailable as exc:
        raise StartupError(str(exc)) from None


def _start_registry_sync(engines: Engines) -> Callable[[], Awaitable[None]]:
    """Another API process may register a SearchParameter: learn it from the store."""

    async def sync() -> None:
        while True:
            await asyncio.sleep(REGISTRY_SYNC_SECONDS)
            try:
                await sync_search_parameters(engines.store, engines.registry)
            except Exception as exc:  # the store is down: try again next round
                log.warning("search parameter sync failed: %s", exc)

    task = asyncio.create_task(sync(), name="micdr-registry-sync")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


def _validate_with(
    registry: SearchParamRegistry, topics: TopicCatalog, allow_list: tuple[str, ...]
) -> Callable[[dict[str, Any]], None]:
    """Base R4 validation, then: an active SearchParameter must be usable by the registry, a
    Subscription valid and its endpoint allowed, a SubscriptionTopic (as Basic) well defined."""
    criteria = Criteria(registry)

    def validate(resource: dict[str, Any]) -> None:
        validate_resource(resource)
        check_search_parameter(registry, resource)
        check_written(resource, topics, criteria, allow_list)

    return validate
