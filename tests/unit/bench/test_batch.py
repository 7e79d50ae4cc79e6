"""The large-batch measurement sends what it says: `entries` Patient PUTs, each to its own id."""

from __future__ import annotations

from bench.batch import patient_batch


def test_the_batch_puts_each_patient_at_its_own_id() -> None:
    batch = patient_batch(50, seed=3)
    entries = batch["entry"]
    assert batch["type"] == "batch" and len(entries) == 50
    assert all(e["resource"]["resourceType"] == "Patient" for e in entries)
    urls = [e["request"]["url"] for e in entries]
    assert urls == [f"Patient/{e['resource']['id']}" for e in entries]
    assert len(set(urls)) == 50
    assert {e["request"]["method"] for e in entries} == {"PUT"}
    assert all("meta" not in e["resource"] for e in entries)
