"""The one interaction table (app/interactions/table.py) and what is derived from it: every row
has its function, Bundle GET entries reach exactly the table's GET rows, and a submission
replays exactly the rows marked asynchronous."""

from __future__ import annotations

import pytest

from app.interactions._reads import READS
from app.interactions.async_status import async_cancel, async_status
from app.interactions.create import create
from app.interactions.handlers import HANDLERS, REPLAYS
from app.interactions.history import history
from app.interactions.read import read
from app.interactions.search import search
from app.interactions.table import (
    ASYNC_STATUS,
    OPERATIONS,
    TABLE,
    capability_codes,
    match,
    operations,
)
from app.interactions.vread import vread


def test_every_routed_row_has_its_function() -> None:
    assert sorted({row.runs for row in (*TABLE, *ASYNC_STATUS, *OPERATIONS)}) == sorted(HANDLERS)
    assert HANDLERS["async-status"] is async_status
    assert HANDLERS["async-cancel"] is async_cancel


def test_every_kickoff_operation_has_its_definition() -> None:
    kickoffs = [row for row in OPERATIONS if row.code in ("export", "import", "everything")]
    assert all(row.operation for row in kickoffs)
    assert not any(row.operation for row in OPERATIONS if row not in kickoffs)  # status, files


BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"


@pytest.mark.parametrize(
    ("owner", "declared"),
    [
        (
            None,
            [
                ("export", BULK + "export"),
                ("import", "http://micdr.org/fhir/OperationDefinition/import"),
            ],
        ),
        (
            "Patient",
            [
                ("export", BULK + "patient-export"),
                ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
            ],
        ),
        ("Group", [("export", BULK + "group-export")]),
        (
            "Subscription",
            [
                ("status", BACKPORT + "backport-subscription-status"),
                ("events", BACKPORT + "backport-subscription-events"),
            ],
        ),
        ("Observation", []),
    ],
)
def test_each_operation_is_declared_once_where_it_runs(
    owner: str | None, declared: list[tuple[str, str]]
) -> None:
    assert operations(owner) == declared


def test_bundle_reads_are_the_get_rows_of_the_table() -> None:
    assert sorted(READS) == sorted({row.code for row in TABLE if row.method == "GET"})


def test_replays_are_the_asynchronous_rows() -> None:
    assert sorted(REPLAYS) == ["create", "delete", "patch", "transaction", "update"]
    assert all(REPLAYS[code] is HANDLERS[code] for code in REPLAYS)
    assert REPLAYS["create"] is create


def test_the_capability_codes_are_the_table_codes_once_each() -> None:
    assert capability_codes() == [
        "transaction",
        "history-system",
        "search-system",
        "search-type",
        "create",
        "update",
        "patch",
        "delete",
        "history-type",
        "read",
        "history-instance",
        "vread",
    ]


@pytest.mark.parametrize(
    ("segments", "code", "params", "run"),
    [
        ((), "search-system", {}, search),
        (("_history",), "history-system", {}, history),
        (("Patient",), "search-type", {"type": "Patient"}, search),
        (("Patient", "_history"), "history-type", {"type": "Patient"}, history),
        (("Patient", "p1"), "read", {"type": "Patient", "id": "p1"}, read),
        (
            ("Patient", "p1", "_history"),
            "history-instance",
            {"type": "Patient", "id": "p1"},
            history,
        ),
        (
            ("Patient", "p1", "_history", "2"),
            "vread",
            {"type": "Patient", "id": "p1", "vid": "2"},
            vread,
        ),
    ],
)
def test_a_get_path_reaches_its_row(
    segments: tuple[str, ...], code: str, params: dict[str, str], run: object
) -> None:
    found = match("GET", segments)
    assert found is not None
    row, got = found
    assert (row.code, got) == (code, params)
    assert READS[row.code] is run


def test_a_path_no_row_has_reaches_nothing() -> None:
    assert match("GET", ("Patient", "p1", "x")) is None
    assert match("GET", ("Patient", "p1", "_history", "2", "x")) is None
    assert match("PUT", ()) is None
