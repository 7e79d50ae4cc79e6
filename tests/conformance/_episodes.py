"""Edits of the IG example episodes (tests/conformance/conftest.py `episode`) shared by the IG
rule and requirement tests."""

from __future__ import annotations

from typing import Any

KIND = "https://example.org/fhir/CodeSystem/micdr-contributor-kind"


def resource(bundle: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == type_
    )
    return found


def keep_identifiers(bundle: dict[str, Any], type_: str, *systems: str) -> dict[str, Any]:
    r = resource(bundle, type_)
    r["identifier"] = [i for i in r["identifier"] if i["system"] in systems]
    if not r["identifier"]:
        del r["identifier"]
    return bundle


def as_ichsc(bundle: dict[str, Any]) -> dict[str, Any]:
    resource(bundle, "Organization")["type"] = [{"coding": [{"system": KIND, "code": "ichsc"}]}]
    return bundle
