"""Compartments (compartmentdefinition.html), data-driven like the search parameters: the R4
`CompartmentDefinition` resources under `search-params/compartments/` say, for each resource
type, which search parameters put a resource in a compartment. Bulk export at patient and group
level and `Patient/$everything` use the Patient compartment.

A resource is in the compartment of Patient P when one of its type's listed parameters
references P; P itself is in its own compartment (and a Patient linking to P, by the `link`
parameter the definition lists for Patient). Pure: the parameters' compiled expressions come
from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from indexing.extract import values_of_nodes
from indexing.registry import COMPARTMENTS_DIR, SearchParamRegistry, default_search_params_dir

from ._values import ReferenceValue

PATIENT_COMPARTMENT = "patient.json"


@dataclass(frozen=True)
class Compartment:
    """One compartment definition: its owner type (`code`) and, per member type, the
    parameters that make a resource a member."""

    code: str
    url: str
    params: Mapping[str, tuple[str, ...]]

    @classmethod
    def load(cls, file: str = PATIENT_COMPARTMENT, directory: Path | None = None) -> Compartment:
        root = directory if directory is not None else default_search_params_dir()
        return cls.parse(orjson.loads((root / COMPARTMENTS_DIR / file).read_bytes()))

    @classmethod
    def parse(cls, definition: Mapping[str, Any]) -> Compartment:
        if definition.get("resourceType") != "CompartmentDefinition":
            raise ValueError("expected a CompartmentDefinition")
        params = {
            str(entry["code"]): tuple(p for p in entry.get("param") or () if p != "{def}")
            for entry in definition.get("resource") or ()
        }
        code = str(definition["code"])
        return cls(
            code=code,
            url=str(definition["url"]),
            params={t: p for t, p in params.items() if p or t == code},
        )

    @property
    def types(self) -> tuple[str, ...]:
        """The types that can be in the compartment (the owner type first), in name order."""
        return (self.code, *sorted(t for t in self.params if t != self.code))

    def owners(
        self, registry: SearchParamRegistry, type_: str, resource: Mapping[str, Any]
    ) -> set[str]:
        """The ids of the compartments (of `code` resources) `resource` is in."""
        found: set[str] = set()
        if type_ == self.code and isinstance(resource.get("id"), str):
            found.add(resource["id"])
        for code in self.params.get(type_, ()):
            bound = registry.bound(type_, code)
            if bound is None:
                continue
            for value in values_of_nodes("reference", bound.evaluate(resource)):
                if isinstance(value, ReferenceValue) and value.type == self.code and value.id:
                    found.add(value.id)
        return found
