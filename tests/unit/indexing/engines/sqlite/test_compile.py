"""`compile_query` / `compile_count` (indexing/engines/sqlite/compile.py): pure plan -> SQL.

Semantics are pinned by tests/vectors through the contract suite; these tests pin the compiler's
own guarantees: values only ever as bound parameters, unresolved plans refused, cursors checked.
"""

from __future__ import annotations

import sqlite3

import pytest

from indexing.engines.sqlite._rows import document_rows
from indexing.engines.sqlite.compile import compile_count, compile_query
from indexing.engines.sqlite.schema import SCHEMA
from indexing.plan.plan import (
    Chain,
    Clause,
    DateMatch,
    Has,
    IdIn,
    Missing,
    RefIn,
    RefMatch,
    SearchPlan,
    SortKey,
    StringMatch,
    TokenMatch,
    UriMatch,
)
from indexing.registry import SearchParamRegistry

HOSTILE = "x'); DROP TABLE idx_resource; --"

# the parameter numbers of a file that has indexed values of these (as the adapter reads them)
NAMES = {
    "family": {"Patient": 1},
    "birthdate": {"Patient": 2},
    "gender": {"Patient": 3},
    "identifier": {"Patient": 4, "ServiceRequest": 5},
    "status": {"ServiceRequest": 6, "DiagnosticReport": 7},
    "issued": {"DiagnosticReport": 8},
    "subject": {"DiagnosticReport": 9, "Observation": 10},
    "code": {"Observation": 11},
}


def test_values_are_bound_never_concatenated(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=(HOSTILE,),
        clauses=(
            Clause((StringMatch("family", HOSTILE), TokenMatch("identifier", HOSTILE))),
            Clause((RefMatch("subject", HOSTILE), UriMatch("url", HOSTILE, "above"))),
            Clause((IdIn((HOSTILE,)),)),
        ),
    )
    sql, params = compile_query(plan, registry, NAMES, after=[HOSTILE, HOSTILE])
    assert HOSTILE not in sql
    assert HOSTILE in params
    assert sql.count("?") == len(params)
    count_sql, count_params = compile_count(plan, registry, NAMES)
    assert HOSTILE not in count_sql
    assert count_sql.count("?") == len(count_params)


def test_sort_params_come_before_filter_params(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=("Patient",),
        clauses=(Clause((StringMatch("family", "doe"),)),),
        sort=(SortKey("birthdate", descending=True),),
        count=7,
    )
    sql, params = compile_query(
        plan, registry, NAMES, after=["2000-01-01T00:00:00.000Z", "Patient", "1"]
    )
    assert params[0] == NAMES["birthdate"]["Patient"]
    assert params[-1] == 7
    assert sql.count("?") == len(params)


@pytest.mark.parametrize(
    "predicate",
    [
        Chain("subject", ("Patient",), Clause((StringMatch("name", "x"),))),
        Has("Observation", "subject", Clause((TokenMatch("code", "x"),))),
    ],
)
def test_unresolved_chain_or_has_is_refused(
    registry: SearchParamRegistry, predicate: Chain | Has
) -> None:
    plan = SearchPlan(types=("Patient",), clauses=(Clause((predicate,)),))
    with pytest.raises(ValueError, match="resolved"):
        compile_query(plan, registry, NAMES)


def test_cursor_must_fit_the_sort_keys(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(types=("Patient",), sort=(SortKey("family"),))
    with pytest.raises(ValueError, match="cursor"):
        compile_query(plan, registry, NAMES, after=["Patient", "1"])


def test_sort_by_a_parameter_that_cannot_sort_is_refused(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(types=("Observation",), sort=(SortKey("code-value-quantity"),))
    with pytest.raises(ValueError, match="cannot sort"):
        compile_query(plan, registry, NAMES)


def test_composite_values_share_a_group_per_value() -> None:
    document = {
        "id": "o1",
        "resourceType": "Observation",
        "versionId": 1,
        "lastUpdated": "2024-01-01T00:00:00.000Z",
        "code-value-quantity": [
            {
                "code": {"forms": ["a"], "code": "a"},
                "value-quantity": {"gte": 1, "lte": 2, "value": 1.5},
            },
            {
                "code": {"forms": ["b"], "code": "b"},
                "value-quantity": {"gte": 3, "lte": 4, "value": 3.5},
            },
        ],
    }
    rows = document_rows(document)
    assert rows["idx_token"] == [
        ("code-value-quantity$code", 1, "", "a"),
        ("code-value-quantity$code", 2, "", "b"),
    ]
    assert [row[1] for row in rows["idx_number"]] == [1, 2]
    assert rows["idx_param"] == [("code-value-quantity",)]


# -- which predicate drives the plan --------------------------------------------------------------


def _query_plan(plan: SearchPlan, registry: SearchParamRegistry) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of the compiled search, one line per step. No statistics are
    kept (no ANALYZE), so the empty schema is planned as a loaded one is."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        sql, params = compile_query(plan, registry, NAMES)
        return [str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        db.close()


SINCE_2015 = DateMatch(
    "issued", "ge", "2015-01-01T00:00:00.000+00:00", "2015-01-01T23:59:59.999+00:00"
)


def test_a_patient_reference_drives_a_report_search_and_the_date_is_probed_per_report(
    registry: SearchParamRegistry,
) -> None:
    # the IG's longitudinal search (patient.identifier resolved to the patient, issued=ge2015),
    # the broad date given first: it must not be enumerated whole
    plan = SearchPlan(
        types=("DiagnosticReport",),
        clauses=(
            Clause((SINCE_2015,)),
            Clause((TokenMatch("status", "final"),)),
            Clause((RefIn("subject", ("Patient/p1", "Patient/p2")),)),
        ),
    )
    steps = _query_plan(plan, registry)
    assert steps[0] == "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"
    assert {s for s in steps if "idx_reference" in s} == {
        "SEARCH v USING COVERING INDEX idx_reference_by_pid_ref (pid=? AND ref=?)"
    }
    # every other predicate is a lookup keyed by the report (`doc=?`), never a range scan
    assert [s for s in steps if "idx_date" in s or "idx_token" in s] == [
        "SEARCH v USING INDEX idx_date_by_resource (doc=? AND pid=?)",
        "SEARCH v USING COVERING INDEX idx_token_by_pid_code_system (pid=? AND code=? AND doc=?)",
    ]


def test_an_identifier_drives_before_a_bare_code(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=("ServiceRequest",),
        clauses=(
            Clause((TokenMatch("status", "active"),)),
            Clause((TokenMatch("identifier", "urn:acc|A-1"),)),
        ),
    )
    sql, params = compile_query(plan, registry, NAMES)
    # the identifier's set is selected first; the status is a condition on each of its rows
    assert sql.index("r.doc IN (SELECT v.doc FROM idx_token v") < sql.index("EXISTS (SELECT 1")
    assert params[1:4] == [NAMES["identifier"]["ServiceRequest"], "A-1", "urn:acc"]
    by_code = "SEARCH v USING COVERING INDEX idx_token_by_pid_code_system"
    assert _query_plan(plan, registry) == [
        "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)",
        "LIST SUBQUERY 1",
        f"{by_code} (pid=? AND code=?)",
        "CORRELATED SCALAR SUBQUERY 2",
        f"{by_code} (pid=? AND code=? AND doc=?)",
        "USE TEMP B-TREE FOR ORDER BY",
    ]


def test_negations_and_missing_never_drive(registry: SearchParamRegistry) -> None:
    plan = SearchPlan(
        types=("Patient",),
        clauses=(
            Clause((TokenMatch("gender", "male", negate=True),)),
            Clause((Missing("birthdate", missing=True),)),
        ),
    )
    sql, _ = compile_query(plan, registry, NAMES)
    assert " IN (SELECT" not in sql
    assert sql.count("NOT EXISTS (SELECT 1 FROM") == 2


@pytest.mark.parametrize(
    ("form", "condition", "values"),
    [
        ("A-1", "v.code = ?", ["A-1"]),
        ("urn:acc|A-1", "v.code = ? AND v.system = ?", ["A-1", "urn:acc"]),
        ("|A-1", "v.code = ? AND v.system = ?", ["A-1", ""]),
        ("urn:acc|", "v.system = ?", ["urn:acc"]),
        ("a\\|b|c\\\\d", "v.code = ? AND v.system = ?", ["c\\d", "a|b"]),
    ],
)
def test_a_token_form_is_a_condition_on_the_value_row(
    registry: SearchParamRegistry, form: str, condition: str, values: list[str]
) -> None:
    """One row per token value (system, code as written); each query form is a condition."""
    plan = SearchPlan(
        types=("ServiceRequest",), clauses=(Clause((TokenMatch("identifier", form),)),)
    )
    sql, params = compile_query(plan, registry, NAMES)
    assert f"WHERE v.pid = ? AND {condition})" in sql
    assert params[1:-1] == [NAMES["identifier"]["ServiceRequest"], *values]
