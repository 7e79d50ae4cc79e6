"""A job a worker took (arq's in-progress mark) but whose submission it never claimed is
released by the submissions' reconciler once the mark is older than the lease
(workers/arq_settings.py `release_untaken`); a younger mark, or a claimed submission's, is
left alone. The whole round, with a killed worker's mark and a real worker, is in
test_async_faults.py."""

from __future__ import annotations

import redis.asyncio
from arq.constants import in_progress_key_prefix, retry_key_prefix

from app.store.port import Submission
from workers.arq_settings import release_untaken
from workers.keys import QueueNames

HELD_FOR = 86_410.0  # what arq sets for our longest job timeout (a day) plus its 10 s
LEASE = 60.0


def submission(id_: str, state: str = "queued", attempts: int = 0) -> Submission:
    request = {"interaction": "transaction", "method": "POST", "base": "http://x/fhir"}
    return Submission(id_, "c", request, 0.0, state=state, attempts=attempts)


async def test_only_marks_older_than_the_lease_on_queued_submissions_are_released(
    redis_url: str, unique_name: str
) -> None:
    names = QueueNames.for_store(unique_name)
    client = redis.asyncio.Redis.from_url(redis_url)
    subs = {
        "old": submission("s-old", attempts=2),  # taken 61 s ago: its taker died
        "young": submission("s-young"),  # taken 5 s ago: its taker is about to claim it
        "running": submission("s-running", state="running"),  # claimed: the lease rules
        "unmarked": submission("s-unmarked"),  # waiting in the queue, taken by nobody
    }
    ages = {"old": 61.0, "young": 5.0, "running": 61.0}
    keys = {
        name: in_progress_key_prefix + names.submission_job_id(sub.id, sub.attempts)
        for name, sub in subs.items()
    }
    tries = {
        name: retry_key_prefix + key.removeprefix(in_progress_key_prefix)
        for name, key in keys.items()
    }
    try:
        for name, age in ages.items():
            await client.psetex(keys[name], int((HELD_FOR - age) * 1000), b"1")
            await client.set(tries[name], b"1")  # arq counts a take as a try
        released = await release_untaken(client, names, list(subs.values()), HELD_FOR, LEASE)
        assert released == [names.submission_job_id("s-old", 2)]
        assert [await client.exists(keys[n]) for n in ("old", "young", "running")] == [0, 1, 1]
        # the dead taker's try is not counted: the next worker runs the job (max_tries=1)
        assert [await client.exists(tries[n]) for n in ("old", "young", "running")] == [0, 1, 1]
        # nothing left to release: a second round does nothing
        assert await release_untaken(client, names, list(subs.values()), HELD_FOR, LEASE) == []
    finally:
        await client.delete(*keys.values(), *tries.values())
        await client.aclose()
