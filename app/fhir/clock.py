"""Server time as FHIR instants: UTC, millisecond precision, fixed width (sorts as text)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def utc_now() -> str:
    return format_instant(datetime.now(UTC))


def http_date(instant: str) -> str:
    """RFC 7231 date for `Last-Modified` from a FHIR instant."""
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
