"""status_answer (app/interactions/async_status.py): the answer of a finished asynchronous
submission, for its status URL and for the contributor's callback, which does not pass through
the HTTP renderer: a Subscription in it shows no header value either (issue 17)."""

from __future__ import annotations

from app.interactions.async_status import status_answer
from app.store.port import Submission


def test_a_subscription_in_a_finished_answer_shows_no_header_value() -> None:
    subscription = {
        "resourceType": "Subscription",
        "id": "s1",
        "status": "requested",
        "reason": "r",
        "criteria": "DiagnosticReport?status=final",
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://rx.example.org/",
            "header": ["Authorization: Bearer s3cret"],
        },
    }
    sub = Submission(
        id="a1",
        contributor="hospital-a",
        request={"method": "POST", "base": "http://x/fhir"},
        created=0.0,
        state="done",
        result={"status": 201, "headers": {}, "body": subscription},
    )
    body, headers = status_answer(sub)
    assert body["channel"]["header"] == ["Authorization: [redacted]"]
    assert headers["X-Original-Status"] == "201"
    assert subscription["channel"]["header"] == ["Authorization: Bearer s3cret"]  # not modified
