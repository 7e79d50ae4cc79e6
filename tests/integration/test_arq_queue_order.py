"""The full stack's queue order (workers/arq_settings.py): a commit's projection and the
notifications it rings go before the asynchronous submissions already queued, so a backlog
of submissions does not hold the index, the episodes and the subscriptions back."""

from __future__ import annotations

import redis.asyncio

from workers.arq_settings import ArqQueue
from workers.keys import QueueNames


async def test_projection_and_delivery_jump_the_queued_submissions(
    redis_url: str, unique_name: str
) -> None:
    names = QueueNames.for_store(unique_name)
    queue = await ArqQueue.open(redis_url, names)
    client = redis.asyncio.Redis.from_url(redis_url)
    order: list[str] = []
    try:
        for n in range(3):
            await queue.submit(f"s{n}")
        await queue.wake(7)
        await queue.deliver(["sub-1"])
        await queue.submit("s3")
        order = [j.decode() for j in await client.zrange(names.queue, 0, -1)]
        assert order[2:] == [names.submission_job_id(f"s{n}", 0) for n in range(4)]
        assert len(order) == 6
        # the two jumpers, in either order: enqueued within one millisecond they share a
        # score, and then Redis orders them by id (the delivery job's is random)
        assert names.project_job_id(7) in order[:2]
        (delivery,) = [j for j in order[:2] if j != names.project_job_id(7)]
        job = await client.get(f"arq:job:{delivery}")
        assert job is not None and await client.pttl(f"arq:job:{delivery}") > 3_600_000
    finally:
        await client.delete(names.queue, *[f"arq:job:{j}" for j in order])
        await client.aclose()
        await queue.close()
