"""`micdr load` of NDJSON straight into the store (app/load.py): each line lands or is refused
alone, lines are committed together while they all succeed, a business identifier gives a
line without id its identity, and the report names every refused line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from app.deploy.assemble import deployed
from app.load import Tally, load, store_submitter, unit_keys
from app.settings import load_settings

MRN = "https://example.org/fhir/NamingSystem/hospital-a-mrn"


def patient(family: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}], **more}


def write_ndjson(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


async def load_into(data_dir: Path, files: list[Path], report: Path) -> Tally:
    settings = load_settings({"MICDR_DATA_DIR": str(data_dir)})
    async with store_submitter(deployed(settings)) as submit:
        return await load(files, submit, report)


async def test_lines_land_or_are_refused_alone_and_identifiers_give_identity(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    source = write_ndjson(
        tmp_path / "patients.ndjson",
        [
            json.dumps(patient("One", id="p1")),
            "",
            json.dumps(patient("Two", identifier=[{"system": MRN, "value": "A,1"}])),
            "{not json",
            json.dumps(patient("Three", gender="sometimes")),
            json.dumps(patient("Four", id="p2")),
        ],
    )
    report = tmp_path / "report.jsonl"
    settings = load_settings({"MICDR_DATA_DIR": str(data)})
    async with deployed(settings) as services:
        before = await services.store.sequence()

    tally = await load_into(data, [source], report)

    assert (tally.units, tally.failed_units, tally.resources, tally.rejects) == (1, 1, 3, 2)
    (outcome,) = [orjson.loads(line) for line in report.read_bytes().splitlines()]
    assert [(r["line"], r["status"]) for r in outcome["rejects"]] == [
        (4, "400 Bad Request"),
        (5, "400 Bad Request"),
    ]
    assert outcome["rejects"][0]["reason"].startswith("not JSON")
    assert outcome["rejects"][1]["reason"] == (
        "invalid code 'sometimes': expected one of female, male, other, unknown"
    )
    async with deployed(settings) as services:
        # [p1, Two, Three, p2] fails as one; [p1, Two] commits; [Three, p2] fails; [Three]
        # fails; [p2] commits: two commits for three resources
        assert await services.store.sequence() == before + 2
        found = await services.store.find_by_identifier("Patient", [f"{MRN}|A,1"])
        assert [len(ids) for ids in dict(found).values()] == [1]
        assert {
            r.ref for r in await services.store.read_many([("Patient", "p1"), ("Patient", "p2")])
        } == {
            "Patient/p1",
            "Patient/p2",
        }

    # the unit is done (its rejects are in the report): a rerun with the same report skips it
    assert list(unit_keys([source])) == [f"{source}#1"]
    again = await load_into(data, [source], report)
    assert (again.units, again.resources) == (0, 0)

    # the same lines under a new report: every line with an id or identifier is the same
    # resource again, not a new one
    fixed = write_ndjson(
        tmp_path / "again.ndjson",
        [
            json.dumps(patient("One", id="p1")),
            json.dumps(patient("Two, amended", identifier=[{"system": MRN, "value": "A,1"}])),
        ],
    )
    redo = await load_into(data, [fixed], tmp_path / "again.jsonl")
    assert (redo.units, redo.failed_units, redo.resources, redo.rejects) == (1, 0, 2, 0)
    async with deployed(settings) as services:
        found = dict(await services.store.find_by_identifier("Patient", [f"{MRN}|A,1"]))
        (ids,) = found.values()
        (two,) = await services.store.read_many([("Patient", ids[0])])
        assert (two.version, two.resource["name"]) == (2, [{"family": "Two, amended"}])
        (one,) = await services.store.read_many([("Patient", "p1")])
        assert one.version == 1  # the same content: no new version


async def test_each_unit_is_one_commit_and_all_are_projected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = [json.dumps(patient(f"P{n}", id=f"bulk-{n}")) for n in range(1200)]
    source = write_ndjson(tmp_path / "bulk.ndjson", lines)
    settings = load_settings({"MICDR_DATA_DIR": str(data)})
    async with deployed(settings) as services:
        before = await services.store.sequence()

    tally = await load_into(data, [source], tmp_path / "r.jsonl")

    assert (tally.units, tally.failed_units, tally.resources) == (3, 0, 1200)
    assert list(unit_keys([source])) == [f"{source}#1", f"{source}#501", f"{source}#1001"]
    async with deployed(settings) as services:
        assert await services.store.sequence() == before + 3
        assert await services.store.oldest_unindexed() is None
        stored = await services.store.read_many([("Patient", f"bulk-{n}") for n in range(1200)])
        assert len(stored) == 1200


async def test_lines_naming_one_identifier_are_written_one_after_the_other(
    tmp_path: Path,
) -> None:
    """A line with an id and a later line without one but with the same identifier: the later
    one finds the first, as it would one request after the other (not two resources)."""
    data = tmp_path / "data"
    same = [{"system": MRN, "value": "M-9"}]
    source = write_ndjson(
        tmp_path / "p.ndjson",
        [
            json.dumps(patient("First", id="p9", identifier=same)),
            json.dumps(patient("Other", id="p10")),
            json.dumps(patient("Second", identifier=same)),
        ],
    )
    settings = load_settings({"MICDR_DATA_DIR": str(data)})
    async with deployed(settings) as services:
        before = await services.store.sequence()

    tally = await load_into(data, [source], tmp_path / "r.jsonl")

    assert (tally.units, tally.failed_units, tally.resources, tally.rejects) == (1, 0, 3, 0)
    async with deployed(settings) as services:
        assert await services.store.sequence() == before + 2  # [p9, p10], then [Second]
        found = dict(await services.store.find_by_identifier("Patient", [f"{MRN}|M-9"]))
        assert list(found.values()) == [["p9"]]
        (p9,) = await services.store.read_many([("Patient", "p9")])
        assert (p9.version, p9.resource["name"]) == (2, [{"family": "Second"}])


async def test_a_line_whose_identifier_is_malformed_is_refused_alone(tmp_path: Path) -> None:
    source = write_ndjson(
        tmp_path / "odd.ndjson",
        [
            json.dumps(patient("Odd", identifier="MRN-1")),
            json.dumps(patient("Fine", id="ok-1")),
        ],
    )
    report = tmp_path / "r.jsonl"

    tally = await load_into(tmp_path / "data", [source], report)

    assert (tally.units, tally.failed_units, tally.resources, tally.rejects) == (1, 1, 1, 1)
    (outcome,) = [orjson.loads(line) for line in report.read_bytes().splitlines()]
    assert [(r["line"], r["status"]) for r in outcome["rejects"]] == [(1, "400 Bad Request")]
