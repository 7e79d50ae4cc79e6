"""The export's output as data (app/bulk/output.py): files split at the configured size, chunk
keys fixed by the state (so a batch read again after a crash lands on the same key), the
manifest, NDJSON lines with `_elements`, and which resources a level takes."""

from __future__ import annotations

import orjson
import pytest

from app.bulk.kickoff import ExportRequest
from app.bulk.output import (
    Chunk,
    ExportState,
    OutputFile,
    Selection,
    advance,
    manifest,
    missing_patients,
    ndjson_line,
    output_types,
    progress,
    with_errors,
)
from app.records import StoredResource
from indexing.compartment import Compartment
from indexing.registry import SearchParamRegistry

LINE = b"x" * 9 + b"\n"  # 10 bytes


def test_batches_fill_a_file_until_the_next_would_pass_the_size() -> None:
    state = ExportState(types=("Patient", "Observation"))
    state, chunk = advance(state, [LINE, LINE], "b", max_file_bytes=30)
    assert chunk == Chunk("Patient.1.ndjson", 0, LINE * 2)
    state, chunk = advance(state, [LINE], "c", max_file_bytes=30)
    assert chunk == Chunk("Patient.1.ndjson", 1, LINE)
    state, chunk = advance(state, [LINE], "d", max_file_bytes=30)  # 40 > 30: a new file
    assert chunk == Chunk("Patient.2.ndjson", 0, LINE)
    state, chunk = advance(state, [], None, max_file_bytes=30)  # Patient done, nothing left
    assert chunk is None
    assert (state.position, state.after) == (1, None)
    state, chunk = advance(state, [LINE], None, max_file_bytes=30)
    assert chunk == Chunk("Observation.1.ndjson", 0, LINE)
    assert state.done
    assert state.files == (
        OutputFile("Patient.1.ndjson", "Patient", count=3, size=30, chunks=2),
        OutputFile("Patient.2.ndjson", "Patient", count=1, size=10, chunks=1),
        OutputFile("Observation.1.ndjson", "Observation", count=1, size=10, chunks=1),
    )
    assert ExportState.from_json(orjson.loads(orjson.dumps(state.to_json()))) == state


def test_a_batch_bigger_than_the_size_still_makes_one_file() -> None:
    state, chunk = advance(ExportState(types=("Patient",)), [LINE] * 5, None, max_file_bytes=20)
    assert chunk == Chunk("Patient.1.ndjson", 0, LINE * 5)
    assert state.files == (OutputFile("Patient.1.ndjson", "Patient", 5, 50, 1),)


def test_the_same_batch_from_the_same_state_writes_the_same_chunk() -> None:
    saved = ExportState(
        types=("Patient",), after="a", files=(OutputFile("Patient.1.ndjson", "Patient", 1, 10, 1),)
    )
    assert advance(saved, [LINE], "b", 100) == advance(saved, [LINE], "b", 100)
    assert advance(saved, [LINE], "b", 100)[1] == Chunk("Patient.1.ndjson", 1, LINE)


def test_the_manifest_lists_files_with_lines() -> None:
    state = ExportState(
        types=("Patient",),
        position=1,
        files=(OutputFile("Patient.1.ndjson", "Patient", 2, 20, 1),),
    )
    assert manifest(
        state,
        transaction_time="2024-01-01T00:00:00.000Z",
        request_url="http://s/fhir/$export",
        file_url="http://s/fhir/$export-file/e1",
        requires_token=True,
    ) == {
        "transactionTime": "2024-01-01T00:00:00.000Z",
        "request": "http://s/fhir/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": "Patient", "url": "http://s/fhir/$export-file/e1/Patient.1.ndjson", "count": 2}
        ],
        "error": [],
    }
    assert progress(state) == "finishing: 2 resources"


def test_elements_apply_to_their_type_only() -> None:
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "c"}}
    full = orjson.loads(ndjson_line(obs, "Observation", ("Patient.name",)))
    assert full == obs
    subset = orjson.loads(ndjson_line(obs, "Observation", ("status", "Patient.name")))
    assert set(subset) == {"resourceType", "id", "meta", "status"}
    assert subset["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert ndjson_line(obs, "Observation", ()).endswith(b"}\n")


def stored(
    type_: str, id_: str, resource: dict[str, object] | None, at: str = "2024-01-02T00:00:00.000Z"
) -> StoredResource:
    body = None if resource is None else {"resourceType": type_, "id": id_, **resource}
    return StoredResource(type_, id_, 1, at, resource is None, body)


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.load()


def test_a_level_takes_what_its_compartments_hold(registry: SearchParamRegistry) -> None:
    compartment = Compartment.load()
    of_p1 = stored("Observation", "o1", {"subject": {"reference": "Patient/p1"}})
    of_none = stored("Observation", "o2", {"status": "final"})
    p2 = stored("Patient", "p2", {})
    gone = stored("Patient", "p3", None)

    def takes(request: ExportRequest) -> list[str]:
        sel = Selection(request, compartment, registry)
        return [s.id for s in (of_p1, of_none, p2, gone) if sel.takes(s)]

    assert takes(ExportRequest("system")) == ["o1", "o2", "p2"]
    assert takes(ExportRequest("patient")) == ["o1", "p2"]
    assert takes(ExportRequest("group", patients=("p1",))) == ["o1"]
    assert takes(ExportRequest("system", since="2024-01-02T00:00:00.000Z")) == ["o1", "o2", "p2"]
    assert takes(ExportRequest("system", since="2024-01-02T00:00:00.001Z")) == []


def test_output_types_follow_the_level() -> None:
    compartment = Compartment.load()
    stored_types = ["Organization", "Observation", "Patient", "Group"]
    assert output_types(ExportRequest("system"), compartment, stored_types) == (
        "Group",
        "Observation",
        "Organization",
        "Patient",
    )
    assert output_types(ExportRequest("patient"), compartment, stored_types) == (
        "Patient",
        "Group",
        "Observation",
    )
    assert output_types(ExportRequest("system", types=("Patient",)), compartment, stored_types) == (
        "Patient",
    )


def test_listed_patients_not_exported_are_errors() -> None:
    request = ExportRequest("group", group="g1", patients=("p1", "p2"))
    state = ExportState(types=("Patient",))
    state, _ = advance(state, [LINE], None, 100, seen=["p1"])
    (line,) = missing_patients(request, state)
    outcome = orjson.loads(line)
    assert outcome["issue"][0]["diagnostics"].startswith("Patient/p2, listed by Group/g1,")
    state, chunk = with_errors(state, [line])
    assert chunk == Chunk("OperationOutcome.1.ndjson", 0, line)
    assert state.file("OperationOutcome.1.ndjson") == state.errors[0]
    assert missing_patients(ExportRequest("group", group="g1", patients=("p1",)), state) == []
    assert missing_patients(ExportRequest("system"), state) == []
    no_patients = ExportState(types=("Observation",), position=1)
    assert missing_patients(request, no_patients) == []
    assert with_errors(no_patients, []) == (no_patients, None)
