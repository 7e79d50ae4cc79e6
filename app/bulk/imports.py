"""A Bulk Data import (`$import`, docs/api/import.md) as data: the kick-off's Parameters checked
and turned into an `ImportRequest`, where an input may be read from, the checkpoint the job
keeps, each refused line as an OperationOutcome, and the completion manifest. Pure: the job in
workers/bulk_import.py reads the inputs, commits them and saves the state this module returns.

The job reads its inputs in order, each in units of `app.load.NDJSON_CHUNK` lines. The state
counts the units done of the current input, saved after each unit's commit: a worker killed in
between runs that unit again, which changes nothing for a line with an id or a business
identifier (its write is a no-op the second time) and creates a line with neither twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import orjson

from app.bulk.output import NDJSON, Chunk, OutputFile
from app.fhir.outcome import FhirError
from app.subscriptions.endpoint import refusal

# What `inputFormat` may say: NDJSON of FHIR resources, one per line.
FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
MAX_INPUTS = 1000
_ISSUE_CODES = {
    400: "invalid",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    412: "conflict",
}


@dataclass(frozen=True)
class ImportInput:
    url: str
    type: str | None = None  # what the client says the file holds; each line names its own


@dataclass(frozen=True)
class ImportRequest:
    inputs: tuple[ImportInput, ...]
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [asdict(i) for i in self.inputs], "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportRequest:
        return cls(tuple(ImportInput(**i) for i in data["inputs"]), data.get("source"))


def _bad(diagnostics: str, expression: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, expression)


def _value(part: Mapping[str, Any], *kinds: str) -> Any:
    return next((part[f"value{k}"] for k in kinds if f"value{k}" in part), None)


def local_file(url: str, import_dirs: Iterable[str]) -> Path | None:
    """The file a `file:` URL names when it lies in one of `import_dirs` (after resolving
    `..` and links), else None."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path)).resolve()
    for folder in import_dirs:
        if path.is_relative_to(Path(folder).resolve()):
            return path
    return None


def input_refusal(url: str, import_dirs: Sequence[str], allow_list: Sequence[str]) -> str | None:
    """Why the server may not read `url` (a sentence), or None: a `file:` URL inside an
    operator's import folder, or an https URL that passes the rule against server-side
    request forgery (app/subscriptions/endpoint.py)."""
    if urlsplit(url).scheme == "file":
        if local_file(url, import_dirs) is not None:
            return None
        where = ", ".join(import_dirs) if import_dirs else "none: MICDR_IMPORT_DIRS is not set"
        return f"input url {url!r} is not a file in the import folders ({where})"
    return refusal(url, allow_list, name="input url")


def parse_import(
    body: Any,
    known_types: frozenset[str],
    import_dirs: Sequence[str],
    allow_list: Sequence[str],
) -> ImportRequest:
    """The kick-off's Parameters as an ImportRequest, or the 400 that says what is wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _bad("the $import kick-off body must be a Parameters resource", "Parameters")
    inputs: list[ImportInput] = []
    source: str | None = None
    for index, param in enumerate(body.get("parameter") or []):
        name = param.get("name") if isinstance(param, dict) else None
        where = f"Parameters.parameter[{index}]"
        if name == "inputFormat":
            fmt = _value(param, "Code", "String")
            if fmt not in FORMATS:
                raise FhirError.of(
                    400, "not-supported", f"inputFormat {fmt!r}: only {NDJSON} is read", where
                )
        elif name == "inputSource":
            source = _value(param, "Uri", "Url", "String")
        elif name == "input":
            inputs.append(_input(param, where, known_types, import_dirs, allow_list))
        elif name in ("storageDetail", "mode"):
            continue  # how inputs are reached is said by their URLs; every load is incremental
        else:
            raise _bad(f"$import has no parameter {name!r}", where)
    if not inputs:
        raise _bad("$import needs at least one input (type, url)", "Parameters.parameter")
    if len(inputs) > MAX_INPUTS:
        raise _bad(f"$import takes at most {MAX_INPUTS} inputs, not {len(inputs)}", "Parameters")
    return ImportRequest(tuple(inputs), source)


def _input(
    param: Mapping[str, Any],
    where: str,
    known_types: frozenset[str],
    import_dirs: Sequence[str],
    allow_list: Sequence[str],
) -> ImportInput:
    parts = {p.get("name"): p for p in param.get("part") or [] if isinstance(p, dict)}
    url = _value(parts.get("url") or {}, "Uri", "Url", "String")
    if not isinstance(url, str) or not url:
        raise _bad("an input needs a url part", f"{where}.part")
    type_ = _value(parts.get("type") or {}, "Code", "String")
    if type_ is not None and type_ not in known_types:
        raise _bad(f"input type {type_!r} is not a resource type this server holds", where)
    why = input_refusal(url, import_dirs, allow_list)
    if why is not None:
        raise FhirError.of(400, "security", why, f"{where}.part")
    return ImportInput(url, type_)


@dataclass(frozen=True)
class InputTally:
    loaded: int = 0
    refused: int = 0


@dataclass(frozen=True)
class ImportState:
    """Where an import stands: the input being read (`position`), the units of it done, what
    each input gave so far, and the files of refused lines (one per input that has any)."""

    # the bulk job's interaction name, and the key of its checkpoint in the submission's journal
    KIND: ClassVar[str] = "import"
    position: int = 0
    units: int = 0
    tallies: tuple[InputTally, ...] = ()
    errors: tuple[OutputFile, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "units": self.units,
            "tallies": [asdict(t) for t in self.tallies],
            "errors": [asdict(f) for f in self.errors],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportState:
        return cls(
            position=int(data["position"]),
            units=int(data["units"]),
            tallies=tuple(InputTally(**t) for t in data.get("tallies") or ()),
            errors=tuple(OutputFile(**f) for f in data.get("errors") or ()),
        )

    def file(self, name: str) -> OutputFile | None:
        return next((f for f in self.errors if f.name == name), None)

    @property
    def loaded(self) -> int:
        return sum(t.loaded for t in self.tallies)


def error_file_name(position: int) -> str:
    return f"OperationOutcome.{position + 1}.ndjson"


def refused_line(url: str, reject: Mapping[str, Any]) -> bytes:
    """One refused line as an OperationOutcome NDJSON line that says where it was."""
    status = str(reject.get("status", ""))
    code = _ISSUE_CODES.get(int(status[:3]) if status[:3].isdigit() else 0, "processing")
    where = f"{url} line {reject['line']}" if "line" in reject else url
    text = ": ".join(p for p in (where, status, str(reject.get("reason", ""))) if p)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return orjson.dumps(outcome) + b"\n"


def advance(
    state: ImportState, url: str, loaded: int, rejects: Sequence[Mapping[str, Any]]
) -> tuple[ImportState, Chunk | None]:
    """The state after one unit of the current input, and the chunk of its refused lines to
    write before that state is saved (None when it has none)."""
    tallies = _tallies(state)
    mine = tallies[state.position]
    tallies[state.position] = replace(
        mine, loaded=mine.loaded + loaded, refused=mine.refused + len(rejects)
    )
    state = replace(state, units=state.units + 1, tallies=tuple(tallies))
    if not rejects:
        return state, None
    data = b"".join(refused_line(url, r) for r in rejects)
    name = error_file_name(state.position)
    errors = list(state.errors)
    found = next((i for i, f in enumerate(errors) if f.name == name), None)
    if found is None:
        errors.append(OutputFile(name, "OperationOutcome"))
        found = len(errors) - 1
    before = errors[found]
    errors[found] = replace(
        before,
        count=before.count + len(rejects),
        size=before.size + len(data),
        chunks=before.chunks + 1,
    )
    return replace(state, errors=tuple(errors)), Chunk(name, before.chunks, data)


def next_input(state: ImportState) -> ImportState:
    return replace(state, position=state.position + 1, units=0, tallies=tuple(_tallies(state)))


def _tallies(state: ImportState) -> list[InputTally]:
    """The tallies, with one (empty until counted) for each input up to the current one."""
    return list(state.tallies) + [InputTally()] * (state.position + 1 - len(state.tallies))


def progress(state: ImportState, inputs: int) -> str:
    if state.position >= inputs:
        return f"finishing: {state.loaded} resources"
    return f"input {state.position + 1} of {inputs}: {state.loaded} resources loaded"


def manifest(
    state: ImportState,
    request: ImportRequest,
    *,
    transaction_time: str,
    request_url: str,
    file_url: str,
    requires_token: bool,
) -> dict[str, Any]:
    """The completion manifest: per input what it loaded, and where its refused lines are."""
    output, error = [], []
    for position, item in enumerate(request.inputs):
        tally = state.tallies[position] if position < len(state.tallies) else InputTally()
        output.append(
            {"type": item.type or "Resource", "inputUrl": item.url, "count": tally.loaded}
        )
        found = state.file(error_file_name(position))
        if found is not None:
            error.append(
                {
                    "type": "OperationOutcome",
                    "inputUrl": item.url,
                    "count": found.count,
                    "url": f"{file_url}/{found.name}",
                }
            )
    return {
        "transactionTime": transaction_time,
        "request": request_url,
        "requiresAccessToken": requires_token,
        "output": output,
        "error": error,
    }
