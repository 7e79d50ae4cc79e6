"""The IG's two submission kinds (IG R20, R21): a Submit MI Bundle (orders, reports, studies and
what they reference) and a Submit MI Report (a report and what it references). Both arrive as
transaction Bundles at the same endpoints; a report submission says what it is by its
`Bundle.meta.profile`. The IG publishes no URL for that profile, so the accepted URLs are
configuration (MICDR_REPORT_BUNDLE_PROFILES). Pure."""

from __future__ import annotations

from typing import Any

from app.fhir.outcome import FhirError


def check_submission(bundle: Any, report_profiles: tuple[str, ...]) -> None:
    """Refuse a Submit MI Report Bundle without a DiagnosticReport (IG R20)."""
    if not isinstance(bundle, dict):
        return
    meta = bundle.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list) or not any(p in report_profiles for p in profiles):
        return
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "DiagnosticReport":
            return
    raise FhirError.of(
        422,
        "business-rule",
        "IG R20: a Submit MI Report Bundle (Bundle.meta.profile names the report submission) "
        "must contain the DiagnosticReport it submits",
        "Bundle.entry",
    )
