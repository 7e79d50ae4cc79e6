"""create: `POST [base]/[type]` (http.html#create), conditional with `If-None-Exist`.

The server assigns the id (a client id in the body is ignored, IG R19). A conditional create is
race-free: the business identifier is claimed in the store (see app/records.py `Claim`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from app.interactions._respond import write_response
from app.interactions._write import execute
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.tx.conditional import parse_criteria
from app.tx.entry import Entry, check_entry


async def create(services: Services, request: FhirRequest) -> FhirResponse:
    assert request.type is not None
    condition = request.header("If-None-Exist")
    entry = Entry(
        index=-1,
        method="POST",
        type=request.type,
        resource=request.body,
        if_none_exist=parse_criteria(
            request.type, urlsplit(condition).query or condition.lstrip("?")
        )
        if condition
        else None,
    )
    check_entry(entry)
    plan = await execute(services, [entry])
    return write_response(plan.results[0], request.base)
