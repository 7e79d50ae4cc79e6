"""app/http/viewer.py: the viewer's configuration follows the settings, and the page and its
assets are served from the package at /viewer (issue 19)."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from app.http.viewer import ASSETS, SECURITY_HEADERS, viewer_config
from app.ig.identifiers import HCN_SYSTEM
from app.main import create_app
from app.settings import load_settings

MRN_A = "https://example.org/fhir/NamingSystem/hospital-a-mrn"
MRN_B = "https://example.org/fhir/NamingSystem/hospital-b-mrn"


def test_the_config_offers_the_hcn_then_each_configured_mrn_system() -> None:
    settings = load_settings({"MICDR_MRN_SYSTEMS": f"{MRN_A},{MRN_B}"})
    assert viewer_config(settings) == {
        "fhirBase": "/fhir",
        "identifierSystems": [
            {"kind": "HCN", "label": "Ontario health card number (HCN)", "system": HCN_SYSTEM},
            {"kind": "MRN", "label": "MRN — hospital-a-mrn", "system": MRN_A},
            {"kind": "MRN", "label": "MRN — hospital-b-mrn", "system": MRN_B},
        ],
        "auth": {"required": False, "issuer": None},
    }


def test_the_config_says_when_a_bearer_token_is_needed(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    settings = load_settings(
        {
            "MICDR_AUTH_JWKS_FILE": str(jwks),
            "MICDR_AUTH_ISSUER": "https://idp.example.org",
            "MICDR_AUTH_AUDIENCE": "https://micdr.example.org/fhir",
        }
    )
    assert viewer_config(settings)["auth"] == {
        "required": True,
        "issuer": "https://idp.example.org",
    }


def test_the_page_its_assets_and_its_config_are_served(tmp_path: Path) -> None:
    app = create_app(load_settings({"MICDR_DATA_DIR": str(tmp_path)}))
    with TestClient(app) as client:
        page = client.get("/viewer/")
        assert (page.status_code, page.headers["content-type"]) == (
            200,
            "text/html; charset=utf-8",
        )
        assert page.text == (ASSETS / "index.html").read_text()
        script = client.get("/viewer/viewer.js")
        assert script.status_code == 200
        assert script.text == (ASSETS / "viewer.js").read_text()
        assert client.get("/viewer/config.json").json()["fhirBase"] == "/fhir"
        assert client.get("/viewer/missing.js").status_code == 404
        for response in (page, script, client.get("/viewer/config.json")):
            assert {k: response.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
