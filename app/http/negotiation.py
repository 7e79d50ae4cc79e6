"""Content negotiation (http.html#mime-type): request body formats, `_format` over `Accept`,
`_pretty`. JSON is the default (IG R3); XML in and out (R2); UTF-8 throughout (R4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.fhir.outcome import FhirError
from app.security.limits import MAX_JSON_DEPTH, json_depth_exceeds

JSON = "application/fhir+json"
XML = "application/fhir+xml"
JSON_PATCH = "application/json-patch+json"

_JSON_TYPES = {"application/fhir+json", "application/json", "text/json", "json"}
_XML_TYPES = {"application/fhir+xml", "application/xml", "text/xml", "xml"}
_FORMAT_ALIASES = {"json": JSON, "xml": XML}


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """The request body as FHIR JSON (a dict, or a list for JSON Patch)."""
    kind = media_type(content_type)
    if not raw:
        return None
    if kind in _XML_TYPES:
        from app.fhir.xml import parse_xml

        return parse_xml(raw)
    if kind in _JSON_TYPES or kind == JSON_PATCH or kind == "":
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FhirError.of(400, "structure", f"the body is not valid JSON: {exc}") from None
        if json_depth_exceeds(parsed):
            raise FhirError.of(
                400, "too-costly", f"the body nests deeper than {MAX_JSON_DEPTH} arrays and objects"
            )
        return parsed
    raise FhirError.of(
        415,
        "not-supported",
        f"Content-Type {kind!r} is not supported; send {JSON}, {XML} or {JSON_PATCH} (PATCH)",
    )


@dataclass(frozen=True)
class OutputFormat:
    media_type: str
    pretty: bool


def output_format(format_param: str | None, accept: str | None, pretty: str | None) -> OutputFormat:
    pretty_on = (pretty or "").lower() == "true"
    if format_param:
        wanted = media_type(format_param)
        if wanted in _JSON_TYPES:
            return OutputFormat(JSON, pretty_on)
        if wanted in _XML_TYPES:
            return OutputFormat(XML, pretty_on)
        raise FhirError.of(
            406, "not-supported", f"_format {format_param!r} is not supported (json or xml)"
        )
    for candidate in (accept or "").split(","):
        kind = media_type(candidate)
        if kind in _XML_TYPES:
            return OutputFormat(XML, pretty_on)
        if kind in _JSON_TYPES:
            return OutputFormat(JSON, pretty_on)
    return OutputFormat(JSON, pretty_on)  # no preference, or only */* or text/html: JSON


def serialize(resource: dict[str, Any], fmt: OutputFormat) -> bytes:
    if fmt.media_type == XML:
        from app.fhir.xml import to_xml

        return to_xml(resource)
    return orjson.dumps(resource, option=orjson.OPT_INDENT_2 if fmt.pretty else 0)
