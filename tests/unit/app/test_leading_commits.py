"""`leading_commits`: an outbox batch sized by the resources its commits hold."""

from __future__ import annotations

from app.store.port import CommittedTransaction, leading_commits


def commit(seq: int, resources: int) -> CommittedTransaction:
    refs = tuple(("Patient", f"{seq}-{n}", 1) for n in range(resources))
    return CommittedTransaction(seq, refs, "2026-12-07T00:00:00Z")


def test_takes_commits_in_order_while_their_resources_fit() -> None:
    commits = [commit(1, 3), commit(2, 4), commit(3, 2), commit(4, 1)]
    assert [c.seq for c in leading_commits(commits, 7)] == [1, 2]
    assert [c.seq for c in leading_commits(commits, 9)] == [1, 2, 3]
    assert [c.seq for c in leading_commits(commits, 100)] == [1, 2, 3, 4]


def test_a_commit_larger_than_the_bound_is_taken_alone() -> None:
    assert [c.seq for c in leading_commits([commit(1, 800), commit(2, 1)], 500)] == [1]
    assert leading_commits([], 500) == []
