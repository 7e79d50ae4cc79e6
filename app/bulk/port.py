"""The export files port: where a Bulk Data export's output lives, as chunks of NDJSON.

Contract (executable copy: tests/contract/test_export_files.py):

- `put` stores chunk `index` of file `name` of export `export_id`, replacing a chunk stored
  under the same key (a resumed export writes its last unrecorded chunk again).
- `read` yields chunks 0 to `count - 1` of a file in order, one at a time (a download streams
  them; memory holds one chunk); a missing chunk raises `FileNotFoundError`.
- `remove` deletes every chunk of an export; removing nothing is not an error.
- `exports` names every export that has a chunk stored (the purge compares them with the
  exports still wanted).

Embedded: files in the data dir (app/bulk/local.py). Full stack: documents in the MongoDB
store (app/bulk/mongo.py), which every API and worker process reaches. Why chunks, and not
GridFS: docs/decisions/0007-bulk-export-snapshots-and-chunks.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class ExportFiles(Protocol):
    async def put(self, export_id: str, name: str, index: int, data: bytes) -> None: ...

    def read(self, export_id: str, name: str, count: int) -> AsyncIterator[bytes]: ...

    async def remove(self, export_id: str) -> None: ...

    async def exports(self) -> list[str]: ...


def check_key(export_id: str, name: str = "x") -> None:
    """Ids and names become paths and keys: letters, digits, `.`, `-` and `_` only."""
    for part in (export_id, name):
        if not part or part.startswith(".") or not all(c.isalnum() or c in ".-_" for c in part):
            raise ValueError(f"not a valid export file key: {part!r}")
