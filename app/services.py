"""Compose `Services` from opened engines: the API's lifespan and `micdr load` share this."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from app.engines import Engines, index_lost
from app.fhir.validate import resource_types, validate_resource
from app.ig.rules import IgRules
from app.interactions.context import Services
from app.records import StoredResource, Write
from app.search_parameters import (
    affected_types,
    apply_search_parameter,
    check_search_parameter,
    sync_search_parameters,
)
from app.settings import Settings
from indexing.registry import SearchParamRegistry
from workers.context import JobContext
from workers.inprocess import InProcessRunner, InProcessSubmissions

log = logging.getLogger("micdr.services")

STALE_TRANSACTION_SECONDS = 60.0
REGISTRY_SYNC_SECONDS = 10.0  # full stack: how soon other API processes see a new parameter
REINDEX_CHECKPOINT = "reindex-searchparameter.json"

RequestReindex = Callable[[int, list[str]], Awaitable[None]]


async def _doorbell(
    settings: Settings, engines: Engines
) -> tuple[Callable[[int], Awaitable[None]], Callable[[], Awaitable[int]] | None, RequestReindex]:
    """(on_commit, drain, request_reindex): in-process (embedded) or arq (full stack)."""
    assert engines.index is not None, "open_engines always opens an index"
    lost = await index_lost(engines.store, engines.index)
    if settings.redis_url:
        from workers.arq_settings import ArqQueue

        queue = await ArqQueue.open(settings.redis_url)
        engines.closers.append(queue.close)
        engines.closers.append(_start_registry_sync(engines))
        if lost:
            log.warning("the search index is empty, the store is not: queued its rebuild")
            await queue.rebuild_lost_index()
        return queue.wake, None, queue.request_reindex
    runner = InProcessRunner(
        JobContext(settings, engines.store, engines.index, engines.registry),
        reindex_checkpoint=settings.data_dir / REINDEX_CHECKPOINT,
    )
    if lost:
        log.warning("the search index is empty, the store is not: rebuilding it from the store")
        runner.rebuild()
    await runner.start()
    engines.closers.append(runner.stop)

    async def request_reindex(seq: int, types: list[str]) -> None:
        await runner.request_reindex(types)

    return runner.wake, runner.drain, request_reindex


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


def _validate_with(registry: SearchParamRegistry) -> Callable[[dict[str, Any]], None]:
    """Base R4 validation, then: an active SearchParameter must be usable by the registry."""

    def validate(resource: dict[str, Any]) -> None:
        validate_resource(resource)
        check_search_parameter(registry, resource)

    return validate


def _search_parameter_hook(
    registry: SearchParamRegistry, request_reindex: RequestReindex
) -> Callable[[int, list[Write]], Awaitable[None]]:
    async def on_search_parameters(seq: int, writes: list[Write]) -> None:
        changed = [
            param
            for w in writes
            if (param := apply_search_parameter(registry, _as_stored(w))) is not None
        ]
        types = affected_types(changed)
        if types:
            await request_reindex(seq, sorted(types))

    return on_search_parameters


def _as_stored(write: Write) -> StoredResource:
    last_updated = str((write.resource or {}).get("meta", {}).get("lastUpdated", ""))
    return StoredResource(
        write.type,
        write.id,
        write.version,
        last_updated,
        write.op == "delete",
        write.resource,
        write.op,
    )


async def build_services(settings: Settings, engines: Engines) -> Services:
    """Recover the store, learn the stored SearchParameters, start the projection doorbell, and
    hand out the ports."""
    await engines.store.recover(STALE_TRANSACTION_SECONDS)
    await sync_search_parameters(engines.store, engines.registry)
    on_commit, drain, request_reindex = await _doorbell(settings, engines)
    services = Services(
        settings=settings,
        store=engines.store,
        index=engines.index,
        registry=engines.registry,
        validate=_validate_with(engines.registry),
        resource_types=resource_types(),
        on_commit=on_commit,
        drain=drain,
        rules=IgRules.from_settings(settings) if settings.ig_mode else None,
        on_search_parameters=_search_parameter_hook(engines.registry, request_reindex),
    )
    return await _serve_submissions(settings, engines, services)


async def _serve_submissions(settings: Settings, engines: Engines, services: Services) -> Services:
    """Asynchronous submissions: arq jobs (full stack) or the in-process runner (embedded).
    Answers `services` with the doorbell rung after each submit (docs/implementation/async.md)."""
    if settings.redis_url:
        from workers.arq_settings import ArqQueue

        queue = await ArqQueue.open(settings.redis_url)
        engines.closers.append(queue.close)
        return replace(services, on_submit=queue.submit)
    if not settings.async_concurrency:
        return services  # accept only: another start of this data dir runs them
    assert engines.index is not None
    ctx = JobContext(settings, engines.store, engines.index, engines.registry, services=services)
    runner = InProcessSubmissions(ctx, settings.async_concurrency)
    await runner.start()
    engines.closers.append(runner.stop)
    return replace(services, on_submit=runner.wake)
