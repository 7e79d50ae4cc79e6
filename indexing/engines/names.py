"""Every external name of the search index (aliases, physical indexes), in one place.

Elasticsearch: one physical index per resource type and mapping generation, behind an alias the
application and analysts use (docs/design.md, Search index):

    alias   <prefix>-<type lowercased>           micdr-imagingstudy
    index   <prefix>-<type lowercased>-v<N>      micdr-imagingstudy-v3

A mapping change builds `v<N+1>` and swaps the alias atomically; the alias name never changes.
The analysts' imaging episodes have one index of their own, whose name has a hyphen where a
resource type has letters, so that it is never taken for a resource type's:

    alias   <prefix>-analytics-episodes               micdr-analytics-episodes
    index   <prefix>-analytics-episodes-v<N>          micdr-analytics-episodes-v1

Resource type names are letters only, so `<prefix>-<letters>` identifies an alias unambiguously
even when the prefix itself contains hyphens.
"""

from __future__ import annotations

import re

__all__ = [
    "alias_name",
    "episode_alias",
    "episode_index",
    "index_generation",
    "index_name",
    "is_alias_of",
    "validate_prefix",
]

_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,150}")
_TYPE = re.compile(r"[A-Za-z]+")


def validate_prefix(prefix: str) -> str:
    """The prefix, if Elasticsearch accepts it at the start of an index name (lowercase letters,
    digits, `_`, `.`, `-`; not starting with `-`, `_`, `.`). Raises ValueError otherwise."""
    if not _PREFIX.fullmatch(prefix) or prefix[0] in "-_.":
        raise ValueError(f"index prefix {prefix!r} must be lowercase [a-z0-9_.-], 1-151 chars")
    return prefix


def alias_name(prefix: str, resource_type: str) -> str:
    if not _TYPE.fullmatch(resource_type):
        raise ValueError(f"not a resource type name: {resource_type!r}")
    return f"{prefix}-{resource_type.lower()}"


def index_name(prefix: str, resource_type: str, generation: int) -> str:
    if generation < 1:
        raise ValueError(f"index generation must be >= 1, got {generation}")
    return f"{alias_name(prefix, resource_type)}-v{generation}"


def index_generation(prefix: str, resource_type: str, index: str) -> int | None:
    """N for `<prefix>-<type>-v<N>`, None when `index` is not one of this type's indexes."""
    match = re.fullmatch(re.escape(alias_name(prefix, resource_type)) + r"-v([1-9][0-9]*)", index)
    return int(match.group(1)) if match else None


def is_alias_of(prefix: str, name: str) -> bool:
    """Whether `name` has the shape of one of this prefix's aliases (`<prefix>-<letters>`)."""
    return re.fullmatch(re.escape(prefix) + r"-[a-z]+", name) is not None


EPISODES = "analytics-episodes"


def episode_alias(prefix: str) -> str:
    return f"{prefix}-{EPISODES}"


def episode_index(prefix: str, generation: int) -> str:
    if generation < 1:
        raise ValueError(f"index generation must be >= 1, got {generation}")
    return f"{episode_alias(prefix)}-v{generation}"
