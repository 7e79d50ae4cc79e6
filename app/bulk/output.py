"""The output of a Bulk Data export as data (docs/api/export.md): which resources go in, one
NDJSON line each, how lines are gathered into files, the checkpoint a worker keeps, and the
completion manifest. Pure: the job in workers/export.py reads the store, writes the chunks
this module returns, then saves the state it returns.

An output file is a sequence of chunks, one per store batch that produced lines. A chunk is
written before the state that counts it is saved, under a key (file, index) the state fixes:
after a crash the batch is read again and its chunk written again under the same key, so a
file never holds a line twice or misses one. A file is closed, and the type's next one opened,
when its next chunk would take it past the configured size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import orjson

from app.bulk.kickoff import ExportRequest
from app.fhir.summary import apply_summary
from app.records import StoredResource
from indexing.compartment import Compartment
from indexing.registry import SearchParamRegistry

NDJSON = "application/fhir+ndjson"


@dataclass(frozen=True)
class OutputFile:
    name: str
    type: str
    count: int = 0
    size: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class Chunk:
    """Chunk `index` of output file `file`: `data` is whole NDJSON lines."""

    file: str
    index: int
    data: bytes


@dataclass(frozen=True)
class ExportState:
    """Where an export stands: the types it produces (fixed at its first run), the type being
    read (`position`) and the id after which its next batch starts, and the files so far."""

    # the bulk job's interaction name, and the key of its checkpoint in the submission's journal
    KIND: ClassVar[str] = "export"
    types: tuple[str, ...]
    position: int = 0
    after: str | None = None
    files: tuple[OutputFile, ...] = field(default_factory=tuple)
    # the listed patients (group level, `patient`) exported so far, and the error files
    seen: tuple[str, ...] = ()
    errors: tuple[OutputFile, ...] = ()

    @property
    def done(self) -> bool:
        return self.position >= len(self.types)

    @property
    def count(self) -> int:
        return sum(f.count for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "types": list(self.types),
            "position": self.position,
            "after": self.after,
            # objects, not arrays: FerretDB stores no nested arrays
            "files": [asdict(f) for f in self.files],
            "seen": list(self.seen),
            "errors": [asdict(f) for f in self.errors],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportState:
        return cls(
            types=tuple(data["types"]),
            position=int(data["position"]),
            after=data.get("after"),
            files=tuple(OutputFile(**f) for f in data.get("files") or ()),
            seen=tuple(data.get("seen") or ()),
            errors=tuple(OutputFile(**f) for f in data.get("errors") or ()),
        )

    def file(self, name: str) -> OutputFile | None:
        return next((f for f in (*self.files, *self.errors) if f.name == name), None)


def advance(
    state: ExportState,
    lines: Sequence[bytes],
    after: str | None,
    max_file_bytes: int,
    seen: Sequence[str] = (),
) -> tuple[ExportState, Chunk | None]:
    """The state after one batch of the current type that produced `lines` (of the listed
    patients `seen`) and ends at `after` (None: the type is finished), and the chunk to write
    first (None: no line)."""
    assert not state.done, "the export is finished"
    type_ = state.types[state.position]
    state = replace(state, seen=(*state.seen, *seen))
    files = list(state.files)
    chunk = None
    if lines:
        data = b"".join(lines)
        ours = [i for i, f in enumerate(files) if f.type == type_]
        open_ = files[ours[-1]] if ours else None
        if open_ is None or (open_.size and open_.size + len(data) > max_file_bytes):
            open_ = OutputFile(f"{type_}.{len(ours) + 1}.ndjson", type_)
            files.append(open_)
            ours.append(len(files) - 1)
        chunk = Chunk(open_.name, open_.chunks, data)
        files[ours[-1]] = replace(
            open_,
            count=open_.count + len(lines),
            size=open_.size + len(data),
            chunks=open_.chunks + 1,
        )
    if after is None:
        return replace(state, position=state.position + 1, after=None, files=tuple(files)), chunk
    return replace(state, after=after, files=tuple(files)), chunk


ERROR_FILE = "OperationOutcome.1.ndjson"


def missing_patients(request: ExportRequest, state: ExportState) -> list[bytes]:
    """One OperationOutcome line per listed patient (a Group's members, or `patient`) that the
    export holds no Patient of, when it exports Patients at all."""
    if request.patients is None or "Patient" not in state.types:
        return []
    seen = set(state.seen)
    where = f"Group/{request.group}" if request.group else "the patient parameter"
    return [
        orjson.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "not-found",
                        "diagnostics": f"Patient/{p}, listed by {where}, is not in the export "
                        "(unknown, deleted, or not readable with this token)",
                    }
                ],
            }
        )
        + b"\n"
        for p in request.patients
        if p not in seen
    ]


def with_errors(state: ExportState, lines: Sequence[bytes]) -> tuple[ExportState, Chunk | None]:
    """The finished state with its error file (None: no error), and that file's one chunk."""
    if not lines:
        return state, None
    data = b"".join(lines)
    errors = (OutputFile(ERROR_FILE, "OperationOutcome", len(lines), len(data), 1),)
    return replace(state, errors=errors), Chunk(ERROR_FILE, 0, data)


def progress(state: ExportState) -> str:
    """`X-Progress`: at most 100 characters (the IG)."""
    if state.done:
        return f"finishing: {state.count} resources"
    type_ = state.types[state.position]
    return f"{type_} ({state.position + 1} of {len(state.types)} types): {state.count} resources"[
        :100
    ]


def elements_for(type_: str, elements: Sequence[str]) -> str | None:
    """The `_elements` that apply to `type_` (`Type.element` only to that type), as the list
    `apply_summary` takes; None: the whole resource."""
    chosen = [
        e.split(".", 1)[1] if "." in e else e
        for e in elements
        if "." not in e or e.split(".", 1)[0] == type_
    ]
    return ",".join(chosen) if chosen else None


def ndjson_line(resource: dict[str, Any], type_: str, elements: Sequence[str]) -> bytes:
    """One resource as one NDJSON line (`_elements` applied: the resource marked SUBSETTED)."""
    wanted = elements_for(type_, elements) if elements else None
    if wanted is not None:
        resource = apply_summary(resource, None, wanted)
    return orjson.dumps(resource) + b"\n"


@dataclass(frozen=True)
class Selection:
    """Which stored versions an export takes: not deleted, changed at or after `since`, and at
    patient or group level in the compartment of a patient (of `patients`, when listed)."""

    request: ExportRequest
    compartment: Compartment
    registry: SearchParamRegistry

    def takes(self, stored: StoredResource) -> bool:
        req = self.request
        if stored.deleted or stored.resource is None:
            return False
        if req.since is not None and stored.last_updated < req.since:
            return False
        if req.level == "system":
            return True
        owners = self.compartment.owners(self.registry, stored.type, stored.resource)
        if req.patients is None:
            return bool(owners)
        return not owners.isdisjoint(req.patients)


def output_types(
    request: ExportRequest, compartment: Compartment, stored_types: Sequence[str]
) -> tuple[str, ...]:
    """The types an export reads, in order: those asked for (`_type`), else every stored type
    (system level) or every stored type a patient compartment holds (the Patient first)."""
    if request.types:
        return request.types
    present = set(stored_types)
    if request.level == "system":
        return tuple(sorted(present))
    return tuple(t for t in compartment.types if t in present)


def manifest(
    state: ExportState,
    *,
    transaction_time: str,
    request_url: str,
    file_url: str,
    requires_token: bool,
) -> dict[str, Any]:
    """The completion manifest (export.html#response---complete-status): one output entry per
    file with lines, `file_url` + its name as the url."""
    return {
        "transactionTime": transaction_time,
        "request": request_url,
        "requiresAccessToken": requires_token,
        "output": [
            {"type": f.type, "url": f"{file_url}/{f.name}", "count": f.count}
            for f in state.files
            if f.count
        ],
        "error": [
            {"type": f.type, "url": f"{file_url}/{f.name}", "count": f.count} for f in state.errors
        ],
    }
