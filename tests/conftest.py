"""Suite-wide hooks. The integration engines' versions head the report (not shown with -q)."""

from __future__ import annotations

import os

import pytest

from tests._services import ENGINES, ENV, LABEL, engine_version


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for engine in ENGINES:
        url = os.environ.get(ENV[engine])
        if not url:
            lines.append(f"  {LABEL[engine]}: not configured ({ENV[engine]} unset)")
            continue
        try:
            lines.append(f"  {engine_version(engine, url, timeout=2.0)} at {url}")
        except Exception as exc:  # a header must never break the run
            lines.append(f"  {LABEL[engine]} at {url}: unreachable ({type(exc).__name__})")
    return ["integration engines:", *lines]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove what tests left on the engines: a projection cancelled at a test's end may still
    create an index on the server after the test dropped its own."""
    from tests._full_stack import sweep

    try:
        sweep(os.environ.get(ENV["elasticsearch"]), os.environ.get(ENV["mongo"]))
    except Exception as exc:  # cleanup must never change the run's outcome
        print(f"\nleft test indexes or databases on the engines: {exc}")
