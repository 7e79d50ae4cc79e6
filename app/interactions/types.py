"""What an interaction is: a function of the context and the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.interactions.context import Services
from app.interactions.result import FhirRequest, FhirResponse

Run = Callable[[Services, FhirRequest], Awaitable[FhirResponse]]
