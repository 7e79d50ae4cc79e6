"""Regenerate search-params/r4/ from the official FHIR R4 (4.0.1) SearchParameter bundle.

Dev-only: nothing imports this module. Usage:

    cd /tmp && npm pack hl7.fhir.r4.examples@4.0.1 && tar xzf hl7.fhir.r4.examples-4.0.1.tgz
    python scripts/import_search_params.py /tmp/package/Bundle-searchParams.json

The output keeps only the SearchParameter elements the server uses (see search-params/README.md),
one file per id prefix (`Observation-code` -> Observation.json, `clinical-patient` ->
clinical.json), mirroring how the specification groups shared definitions, so each definition is
stored exactly once and a regenerated tree diffs cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# Elements kept, in the order written; everything else (narrative, xpath, contacts, ...) is
# documentation the server never reads.
KEPT_ELEMENTS = (
    "id",
    "url",
    "code",
    "base",
    "type",
    "expression",
    "target",
    "component",
    "multipleOr",
    "multipleAnd",
    "comparator",
    "modifier",
    "chain",
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "search-params" / "r4"


def compact(resource: dict[str, Any]) -> dict[str, Any]:
    """The subset of one SearchParameter resource that miCDR keeps."""
    kept: dict[str, Any] = {"resourceType": "SearchParameter"}
    for element in KEPT_ELEMENTS:
        if element not in resource:
            continue
        value = resource[element]
        if element == "component":
            value = [{"definition": c["definition"], "expression": c["expression"]} for c in value]
        kept[element] = value
    return kept


def group_by_file(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") != "SearchParameter":
            continue
        groups[resource["id"].split("-", 1)[0]].append(compact(resource))
    for params in groups.values():
        params.sort(key=lambda p: p["id"])
    return groups


def write(groups: dict[str, list[dict[str, Any]]], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    count = 0
    for name, params in sorted(groups.items()):
        text = json.dumps(params, indent=2, ensure_ascii=False) + "\n"
        (out / f"{name}.json").write_text(text, encoding="utf-8")
        count += len(params)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="path to Bundle-searchParams.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
    count = write(group_by_file(bundle), args.out)
    print(f"wrote {count} search parameters to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
