"""Which function runs each row of the interaction table (table.py), by the row's `runs`: the
read side (_reads.READS, which Bundle GET entries use too) and the rest."""

from __future__ import annotations

from collections.abc import Mapping

from app.interactions._reads import READS
from app.interactions.async_status import async_cancel, async_status
from app.interactions.bulk_import import import_system
from app.interactions.bundle import submit_bundle
from app.interactions.create import create
from app.interactions.delete import delete
from app.interactions.everything import everything
from app.interactions.export import export_group, export_patient, export_system
from app.interactions.export_status import (
    export_cancel,
    export_file,
    export_status,
    import_cancel,
    import_file,
    import_status,
)
from app.interactions.patch import patch
from app.interactions.table import TABLE, asynchronous_codes
from app.interactions.types import Run
from app.interactions.update import update

HANDLERS: Mapping[str, Run] = {
    **READS,
    "transaction": submit_bundle,
    "create": create,
    "update": update,
    "patch": patch,
    "delete": delete,
    "async-status": async_status,
    "async-cancel": async_cancel,
    "export-system": export_system,
    "export-patient": export_patient,
    "export-group": export_group,
    "export-status": export_status,
    "export-cancel": export_cancel,
    "export-file": export_file,
    "import-system": import_system,
    "import-status": import_status,
    "import-cancel": import_cancel,
    "import-file": import_file,
    "everything": everything,
}

# What a worker replays: the asynchronous rows' functions.
REPLAYS: Mapping[str, Run] = {
    row.code: HANDLERS[row.runs] for row in TABLE if row.code in asynchronous_codes()
}
