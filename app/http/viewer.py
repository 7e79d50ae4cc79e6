"""The clinicians' page at `/viewer` (docs/viewer.md): static HTML, CSS and JavaScript that read
the record through the public FHIR API only, and the small configuration it starts from (where
the FHIR base is, which patient identifier systems this deployment accepts, whether a bearer
token is needed). The page needs no build step: the files under `assets/viewer/` are served as
they are in the package (docs/decisions/0006-viewer-plain-files-debian-chromium.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from app.ig.identifiers import HCN_SYSTEM
from app.settings import Settings

ASSETS = Path(__file__).resolve().parent / "assets" / "viewer"
VIEWER_PATH = "/viewer"
# The page runs only its own script and talks only to this server; record data is inserted as
# text, and this policy is the second line should that ever fail. Inline styles stay allowed for
# the reports' own HTML, shown in a sandboxed frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' blob:; img-src 'self' data: blob:; frame-src 'self' blob:; "
        "object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def viewer_config(settings: Settings) -> dict[str, Any]:
    """What the page needs before its first FHIR request. The identifier systems are the ones
    the IG rules accept for patients (the Ontario HCN, then each configured MRN system), so a
    clinician picks one instead of typing a URL."""
    systems = [{"kind": "HCN", "label": "Ontario health card number (HCN)", "system": HCN_SYSTEM}]
    systems += [
        {"kind": "MRN", "label": f"MRN — {system.rstrip('/').rsplit('/', 1)[-1]}", "system": system}
        for system in settings.mrn_systems
    ]
    return {
        "fhirBase": settings.base_path,
        "identifierSystems": systems,
        "auth": {"required": settings.auth_configured, "issuer": settings.auth_issuer},
    }


@get("/config.json", name="viewer-config", sync_to_thread=False)
def config(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.services.settings
    return viewer_config(settings)


def secured(response: Response[Any]) -> Response[Any]:
    response.headers.update(SECURITY_HEADERS)
    return response


def page_routes(
    path: str, assets: Path, name: str, config: ControllerRouterHandler
) -> list[ControllerRouterHandler]:
    """A page of plain files under `path` (index.html at `path/`) and its `config.json`, both
    answered with the SECURITY_HEADERS (the viewer's and the analytics dashboard's)."""
    files = create_static_files_router(
        path=path, directories=[assets], html_mode=True, name=name, after_request=secured
    )
    return [Router(path=path, route_handlers=[config], after_request=secured), files]


def viewer_routes() -> list[ControllerRouterHandler]:
    """`/viewer/` (index.html), its assets, and `/viewer/config.json`."""
    return page_routes(VIEWER_PATH, ASSETS, "viewer", config)
