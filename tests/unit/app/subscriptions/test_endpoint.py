"""app/subscriptions/endpoint.py: https only (http to loopback), and no internal address unless
the operator allowed it: the server must not be a way into its own network."""

from __future__ import annotations

import pytest

from app.subscriptions.endpoint import refusal


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://receiver.example.org/hook",
        "https://93.184.216.34/hook",
        "http://127.0.0.1:8765/hook",
        "http://localhost:8765/hook",
        "http://[::1]:8765/hook",
        "https://127.0.0.1/hook",
    ],
)
def test_public_https_and_loopback_endpoints_are_accepted(endpoint: str) -> None:
    assert refusal(endpoint) is None


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://receiver.example.org/hook", "must use https"),
        ("ftp://receiver.example.org/hook", "absolute https URL"),
        ("receiver.example.org/hook", "absolute https URL"),
        ("https:///hook", "absolute https URL"),
        ("https://10.1.2.3/hook", "internal address 10.1.2.3"),
        ("https://192.168.0.10/hook", "internal address 192.168.0.10"),
        ("https://172.16.5.5/hook", "internal address 172.16.5.5"),
        ("https://169.254.169.254/latest/meta-data", "internal address 169.254.169.254"),
        ("https://100.64.0.1/hook", "internal address 100.64.0.1"),
        ("https://0.0.0.0/hook", "internal address 0.0.0.0"),
        ("https://[fd00::1]/hook", "internal address fd00::1"),
        ("https://[::ffff:10.0.0.1]/hook", "internal address 10.0.0.1"),
        ("https://224.0.0.1/hook", "internal address 224.0.0.1"),
        ("https://user:pw@receiver.example.org/hook", "credentials"),
        ("https://receiver.example.org:port/hook", "not a valid URL"),
    ],
)
def test_other_endpoints_are_refused_with_the_reason(endpoint: str, reason: str) -> None:
    why = refusal(endpoint)
    assert why is not None and reason in why


def test_a_name_resolving_to_an_internal_address_is_refused() -> None:
    why = refusal("https://innocent.example.org/hook", addresses=["93.184.216.34", "10.0.0.7"])
    assert why is not None and "10.0.0.7" in why
    assert refusal("https://innocent.example.org/hook", addresses=["93.184.216.34"]) is None


def test_a_name_resolving_to_loopback_alone_may_use_http() -> None:
    assert refusal("http://receiver.test:8000/", addresses=["127.0.0.1"]) is None
    assert refusal("http://receiver.test:8000/", addresses=["127.0.0.1", "93.184.216.34"])


@pytest.mark.parametrize(
    ("endpoint", "allowed"),
    [
        ("https://10.1.2.3/hook", ["10.1.2.3"]),
        ("https://ris.hospital.internal/hook", ["ris.hospital.internal"]),
        ("http://ris.hospital.internal/hook", ["RIS.hospital.internal"]),
    ],
)
def test_the_allow_list_admits_internal_hosts(endpoint: str, allowed: list[str]) -> None:
    assert refusal(endpoint, allowed, addresses=["10.1.2.3"]) is None
    assert refusal(endpoint, addresses=["10.1.2.3"]) is not None
