"""The audit log's file: lines are appended, and a missing folder is created (the full stack has
no data dir of its own)."""

from __future__ import annotations

from pathlib import Path

import orjson

from app.security.audit import AuditRecord, append_line
from app.security.scopes import OPEN


def record(request_id: str) -> AuditRecord:
    return AuditRecord("2026-01-01T00:00:00.000Z", request_id, "read", "GET", "/fhir/x", 200, OPEN)


def test_a_missing_folder_is_created_and_lines_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "audit.jsonl"
    append_line(str(path), record("a"))
    append_line(str(path), record("b"))
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["request_id"] for line in lines] == ["a", "b"]
