"""One large asynchronous batch on a fresh stack: seconds from its acceptance until its status is
done, and per entry (bench/README.md, "A large asynchronous batch").

    .venv/bin/python -m bench.batch --entries 1600 [--stack full]

The batch PUTs generated Patients (no references between entries, so each entry stands alone);
its cost per entry should not grow with the batch's size.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import httpx

from bench.generate import flatten, generate
from bench.stack import engine_urls, ensure_services, start
from bench.workloads import health

POLL_SECONDS = 0.2


def patient_batch(entries: int, seed: int) -> dict[str, Any]:
    patients = [r for r in flatten(generate(seed, entries)) if r["resourceType"] == "Patient"]
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {k: v for k, v in p.items() if k != "meta"},
                "request": {"method": "PUT", "url": f"Patient/{p['id']}"},
            }
            for p in patients[:entries]
        ],
    }


async def run(entries: int, seed: int, kind: str) -> str:
    body = patient_batch(entries, seed)
    urls = engine_urls()
    if kind == "full":
        ensure_services(urls)
    stack = await start(kind, uuid.uuid4().hex[:8], 1 if kind == "full" else 0, urls)
    try:
        async with httpx.AsyncClient(base_url=stack.base, timeout=600) as client:
            await health(client, stack.base)
            began = time.perf_counter()
            accepted = await client.post(
                "",
                json=body,
                headers={"Prefer": "respond-async", "Content-Type": "application/fhir+json"},
            )
            accepted.raise_for_status()
            status = accepted.headers["Content-Location"]
            while (answer := await client.get(status)).status_code == 202:
                await asyncio.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - began
    finally:
        stack.stop()
        await stack.clean()
    sent = len(body["entry"])
    ok = sum(
        1
        for e in answer.json().get("entry", [])
        if str(e.get("response", {}).get("status", "")).startswith("20")
    )
    return (
        f"batch of {sent} entries: {seconds:.1f} s to done, {seconds / sent * 1000:.1f} ms "
        f"per entry; {ok} answered 2xx"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stack", choices=["embedded", "full"], default="embedded")
    args = parser.parse_args(argv)
    print(asyncio.run(run(args.entries, args.seed, args.stack)))


if __name__ == "__main__":
    main()
