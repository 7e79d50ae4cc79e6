"""How a submission is laid out in its MongoDB document.

Its request, its result and each journal entry are stored as JSON text (`request_text`,
`result_text`, `journal_text.<key>`), not as nested documents. Nothing filters on them, and
every change of a submission rewrites its whole document: as text each of them is one string
to copy, where nested they are thousands of fields to convert. On FerretDB a `$set` on a
submission holding 400 KB took 194 ms nested and 35 ms as text (bench/README.md, "A large
asynchronous batch"). A document written before this layout (nested `request`, `result` and
`journal`) is read as it is; the journal entries it gains are added as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from app.store.port import Submission

_AS_TEXT = ("request", "result")


def _text(value: Any) -> str:
    return orjson.dumps(value).decode()


def stored_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` of `update_submission` (top-level fields, or `journal.<key>`) as `$set` fields."""
    stored: dict[str, Any] = {}
    for name, value in changes.items():
        if name in _AS_TEXT:
            stored[name] = None  # a nested value of the older layout is replaced
            stored[f"{name}_text"] = None if value is None else _text(value)
        elif name == "journal":
            stored["journal"] = {}
            stored["journal_text"] = {key: _text(entry) for key, entry in value.items()}
        elif name.startswith("journal."):
            stored[f"journal_text.{name.removeprefix('journal.')}"] = _text(value)
        else:
            stored[name] = value
    return stored


def stored_submission(submission: Submission) -> dict[str, Any]:
    """The document of a new submission (`_id` its id)."""
    doc = submission.to_doc()
    doc["_id"] = doc.pop("id")
    doc.update(stored_changes({name: doc.pop(name) for name in (*_AS_TEXT, "journal")}))
    return doc


def submission_of(doc: Mapping[str, Any] | None) -> Submission | None:
    """The submission a document holds, in this layout or the older one."""
    if doc is None:
        return None
    fields = dict(doc)
    fields["id"] = fields.pop("_id")
    for name in _AS_TEXT:
        text = fields.pop(f"{name}_text", None)
        if text is not None:
            fields[name] = orjson.loads(text)
    journal = dict(fields.get("journal") or {})
    journal.update(
        (k, orjson.loads(v)) for k, v in (fields.pop("journal_text", None) or {}).items()
    )
    fields["journal"] = journal
    return Submission.from_doc(fields)
