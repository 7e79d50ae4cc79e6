"""Safe XML parsing, and the XHTML of Narrative.div as the string JSON carries.

Every XML byte the server reads goes through `parse`: defusedxml over expat with DTDs forbidden
outright, so external entities (XXE), entity-expansion bombs and network lookups never happen —
the document is refused at its DOCTYPE, before any declaration is processed.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from app.fhir.outcome import FhirError

XHTML_NS = "http://www.w3.org/1999/xhtml"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_DIV = f"{{{XHTML_NS}}}div"


def parse(body: bytes | str) -> Element:
    """The root element of `body`; FhirError(400, structure) when malformed or hostile."""
    try:
        return fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FhirError.of(400, "structure", f"XML refused: {type(exc).__name__}") from None
    except ParseError as exc:
        raise FhirError.of(400, "structure", f"malformed XML: {exc}") from None


def check_div(text: str) -> str | None:
    """Why `text` is not a well-formed XHTML <div>, or None when it is."""
    try:
        root = parse(text)
    except FhirError as exc:
        return str(exc)
    if root.tag != _DIV:
        return f"narrative must be an XHTML <div> in the {XHTML_NS} namespace"
    return None


def serialize_div(div: Element) -> str:
    """The XHTML element as the JSON string form: default namespace declared on the div."""
    if div.tag != _DIV:
        raise FhirError.of(400, "structure", f"narrative must be an XHTML <div> ({XHTML_NS})")
    out: list[str] = []
    _write(div, out, root=True)
    return "".join(out)


def _write(el: Element, out: list[str], root: bool = False) -> None:
    ns, _, name = el.tag[1:].partition("}")
    if ns != XHTML_NS:
        raise FhirError.of(400, "structure", f"non-XHTML element {name!r} in narrative")
    out.append(f'<{name} xmlns="{XHTML_NS}"' if root else f"<{name}")
    for key, value in el.attrib.items():
        if key.startswith("{"):
            attr_ns, _, local = key[1:].partition("}")
            key = f"xml:{local}" if attr_ns == _XML_NS else local
        out.append(f' {key}="{escape_attribute(value)}"')
    if el.text is None and len(el) == 0:
        out.append("/>")
        return
    out.append(">")
    if el.text:
        out.append(escape_text(el.text))
    for child in el:
        _write(child, out)
        if child.tail:
            out.append(escape_text(child.tail))
    out.append(f"</{name}>")


def escape_text(text: str) -> str:
    # A literal CR would be normalised away by the reading parser; the reference keeps it.
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def escape_attribute(text: str) -> str:
    # Newlines and tabs are escaped: attribute-value normalisation would turn them into spaces.
    return escape_text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
