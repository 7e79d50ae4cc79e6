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
    OPERATION_DEFINITIONS,
    OPERATIONS,
    TABLE,
    capability_codes,
    match,
)
from app.interactions.vread import vread


def test_every_routed_row_has_its_function() -> None:
    assert sorted({row.runs for row in (*TABLE, *ASYNC_STATUS, *OPERATIONS)}) == sorted(HANDLERS)
    assert HANDLERS["async-status"] is async_status
    assert HANDLERS["async-cancel"] is async_cancel


def test_every_kickoff_operation_has_its_definition() -> None:
    kickoffs = {row.runs for row in OPERATIONS if row.code in ("export", "everything")}
    assert sorted(kickoffs) == sorted(OPERATION_DEFINITIONS)


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


def test_operations_are_declared_by_name_and_definition_on_their_type() -> None:
    from app.interactions.table import operations

    assert operations("Subscription") == [
        (
            "status",
            "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
            "backport-subscription-status",
        ),
        (
            "events",
            "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
            "backport-subscription-events",
        ),
    ]
    assert operations("Patient") == []
