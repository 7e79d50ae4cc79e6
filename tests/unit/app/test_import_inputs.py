"""Which `file:` URLs an $import may read (app/bulk/imports.py): only files inside the
operator's import folders, after `..` and symbolic links are resolved."""

from __future__ import annotations

from pathlib import Path

from app.bulk.imports import input_refusal, local_file


def test_a_file_inside_an_import_folder_is_read_where_it_lies(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "2024").mkdir(parents=True)
    target = inbox / "2024" / "a b.ndjson"
    assert local_file(target.as_uri(), [str(inbox)]) == target
    assert local_file(f"file://localhost{target}", [str(inbox)]) == target
    assert input_refusal(target.as_uri(), [str(inbox)], []) is None


def test_dot_dot_links_other_hosts_and_no_folders_are_refused(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "secret.ndjson").write_text("{}\n")
    (inbox / "link.ndjson").symlink_to(tmp_path / "secret.ndjson")
    for url in (
        f"file://{inbox}/../secret.ndjson",
        (inbox / "link.ndjson").as_uri(),
        f"file://fileserver{inbox}/a.ndjson",
    ):
        assert local_file(url, [str(inbox)]) is None, url
    assert input_refusal((inbox / "a.ndjson").as_uri(), [], []) == (
        f"input url {(inbox / 'a.ndjson').as_uri()!r} is not a file in the import folders "
        "(none: MICDR_IMPORT_DIRS is not set)"
    )


def test_an_https_input_follows_the_rule_against_request_forgery() -> None:
    assert input_refusal("https://files.example.org/a.ndjson", [], []) is None
    assert input_refusal("http://127.0.0.1:8000/a.ndjson", [], []) is None
    assert input_refusal("https://192.168.1.9/a.ndjson", [], []) == (
        "input url 'https://192.168.1.9/a.ndjson' reaches the internal address 192.168.1.9, "
        "which is not on the allow-list"
    )
    assert input_refusal("https://192.168.1.9/a.ndjson", [], ["192.168.1.9"]) is None
    assert input_refusal("ftp://files.example.org/a.ndjson", [], []) == (
        "input url 'ftp://files.example.org/a.ndjson' must be an absolute https URL"
    )
