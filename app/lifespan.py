"""Opens and closes the engines of the chosen deployment; puts `Services` on `app.state`.

Embedded: SQLite store. Full stack: MongoDB (PyMongo async). The index and the queue join here
as their issues land; every engine is opened here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar

from app.fhir.validate import resource_types, validate_resource
from app.interactions.context import Services, Store
from app.settings import Settings
from app.store.port import StoreError

STALE_TRANSACTION_SECONDS = 60.0


class StartupError(RuntimeError):
    """An engine could not be opened; the message is one line for the operator."""


@dataclass
class Engines:
    store: Store
    mongo_client: object | None = None


async def open_store(settings: Settings) -> Engines:
    if settings.mongo_url:
        from pymongo import AsyncMongoClient
        from pymongo.errors import PyMongoError

        from app.store.mongo import MongoResourceStore

        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True
        )
        try:
            await client.admin.command("ping")
            store = await MongoResourceStore.open(client[settings.mongo_database])
        except PyMongoError as exc:
            await client.close()
            raise StartupError(f"MongoDB at {settings.mongo_url} is unreachable: {exc}") from None
        return Engines(store, client)
    from app.store.sqlite import SqliteResourceStore

    try:
        return Engines(await SqliteResourceStore.open(settings.sqlite_path))
    except OSError as exc:
        raise StartupError(f"cannot use data dir {settings.data_dir}: {exc}") from None
    except Exception as exc:  # sqlite3 errors: unwritable or corrupt file
        raise StartupError(f"cannot open {settings.sqlite_path}: {exc}") from None


async def close_engines(engines: Engines) -> None:
    await engines.store.close()
    if engines.mongo_client is not None:
        await engines.mongo_client.close()  # type: ignore[attr-defined]


async def _no_indexer_yet(seq: int) -> None:
    return None


def build_services(settings: Settings, engines: Engines) -> Services:
    return Services(
        settings=settings,
        store=engines.store,
        validate=validate_resource,
        resource_types=resource_types(),
        on_commit=_no_indexer_yet,
    )


OpenEngines = Callable[[Settings], Awaitable[Engines]]


def lifespan(
    settings: Settings, open_engines: OpenEngines = open_store
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        engines = await open_engines(settings)
        try:
            try:
                await engines.store.recover(STALE_TRANSACTION_SECONDS)
            except StoreError as exc:
                raise StartupError(f"recovery failed: {exc}") from None
            app.state.services = build_services(settings, engines)
            yield
        finally:
            await close_engines(engines)

    return run
