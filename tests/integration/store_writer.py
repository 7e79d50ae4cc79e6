"""Child process of tests/integration/test_store_kill.py: commits until it is killed.

    python store_writer.py sqlite PATH
    python store_writer.py mongo URL DATABASE

Transaction i writes three resources that must appear together: Patient/p<i> and
Observation/o<i> (version 1) and Group/g version i+1. It continues from the Group's current
version, so a killed run can be resumed. It prints `ready`, then `<i> <seq>` for each commit
*after* `commit` has returned, flushed: every printed line is an acknowledged transaction.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from app.records import Operation, Transaction, Write
from app.store.mongo import MongoResourceStore
from app.store.sqlite import SqliteResourceStore

AT = "2024-03-01T00:00:00.000Z"


def resource(type_: str, id_: str, version: int) -> dict[str, Any]:
    return {
        "resourceType": type_,
        "id": id_,
        "meta": {"versionId": str(version), "lastUpdated": AT},
    }


def transaction(i: int) -> Transaction:
    group: Operation = "create" if i == 0 else "update"
    return Transaction(
        (
            Write("Patient", f"p{i}", 1, "create", resource("Patient", f"p{i}", 1)),
            Write("Observation", f"o{i}", 1, "create", resource("Observation", f"o{i}", 1)),
            Write("Group", "g", i + 1, group, resource("Group", "g", i + 1)),
        ),
        last_updated=AT,
    )


async def open_store(argv: list[str]) -> Any:
    if argv[0] == "sqlite":
        return await SqliteResourceStore.open(Path(argv[1]))
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(argv[1], serverSelectionTimeoutMS=5000)
    return await MongoResourceStore.open(client[argv[2]])


async def main(argv: list[str]) -> None:
    store = await open_store(argv)
    group = await store.read("Group", "g")
    i = group.version if group is not None else 0
    print("ready", flush=True)
    while True:
        seq = await store.commit(transaction(i))
        print(i, seq, flush=True)
        i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
