"""capabilities: `GET [base]/metadata` (http.html#capabilities), generated from the interaction
table (table.py) so that it says exactly what the server does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.fhir.clock import utc_now
from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse
from app.interactions.table import capability_codes, operations

BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"


def _declared(resource_type: str | None) -> list[dict[str, str]]:
    return [{"name": n, "definition": d} for n, d in operations(resource_type)]


SOFTWARE_VERSION = "0.1.0"

# CapabilityStatement interaction codes of type and instance level, in the spec's order.
_TYPE_CODES = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
_SYSTEM_CODES = ("transaction", "batch", "search-system", "history-system")


def capability_statement(
    services: Services,
    base: str,
    codes: Iterable[str],
    search_params: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    implemented = set(codes)
    if "transaction" in implemented:
        implemented.add("batch")  # the same endpoint answers batch Bundles
    type_interactions = [{"code": c} for c in _TYPE_CODES if c in implemented]
    resources = []
    for type_ in sorted(services.resource_types):
        entry: dict[str, Any] = {
            "type": type_,
            "interaction": type_interactions,
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": services.settings.allow_update_create,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical"],
        }
        if search_params and type_ in search_params:
            entry["searchParam"] = search_params[type_]
        if type_ == "Subscription":
            entry = {"extension": topic_canonicals(services.topics), **entry}
        declared = _declared(type_)
        if declared:
            entry["operation"] = declared
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utc_now(),
        "publisher": "miCDR",
        "kind": "instance",
        "instantiates": [BULK_DATA],
        "software": {"name": "miCDR", "version": SOFTWARE_VERSION},
        "implementation": {
            "description": "miCDR medical imaging clinical data repository "
            f"({services.settings.deployment} deployment). An update whose content equals the "
            "current version is a no-op: no new version is written.",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": security(services),
                "resource": resources,
                "interaction": [{"code": c} for c in _SYSTEM_CODES if c in implemented],
                "operation": _declared(None),
            }
        ],
    }


TOPIC_CANONICAL = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "capabilitystatement-subscriptiontopic-canonical"
)


def topic_canonicals(topics: Iterable[str]) -> list[dict[str, Any]]:
    """The topics a Subscription may name (Backport IG: one extension per topic on the
    Subscription resource entry), built-in and run-time."""
    return [{"url": TOPIC_CANONICAL, "valueCanonical": url} for url in topics]


SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def security(services: Services) -> dict[str, Any]:
    """`rest.security` (docs/security.md)."""
    settings = services.settings
    if not settings.auth_configured:
        return {
            "cors": False,
            "description": "No authentication is configured: open access. The server then "
            "listens on loopback only (micdr serve refuses other addresses without --insecure).",
        }
    return {
        "cors": False,
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth 2 bearer JWT (RS256/ES256)",
            }
        ],
        "description": f"Bearer JWTs issued by {settings.auth_issuer} for audience "
        f"{settings.auth_audience}. SMART v2 scopes: system/ (contributors, limited to the "
        f"organisation in the {settings.auth_org_claim!r} claim), user/ (viewers), patient/ "
        f"(the compartment of the {settings.auth_patient_claim!r} claim). See docs/security.md.",
    }


async def capabilities(services: Services, request: FhirRequest) -> FhirResponse:
    return FhirResponse(200, capability_statement(services, request.base, capability_codes()))
