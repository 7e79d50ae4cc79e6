"""Configuration: every `MICDR_*` variable, parsed once into a frozen object.

Nothing else reads `os.environ`; `create_app(settings)` and the CLI hand this object down.
With nothing set, the embedded default runs (SQLite store, SQLite index, in-process worker).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLE_SYSTEMS = "https://example.org/fhir/NamingSystem"
CONTRIBUTOR_KIND_SYSTEM = "https://example.org/fhir/CodeSystem/micdr-contributor-kind"


class SettingsError(ValueError):
    """A `MICDR_*` variable has a value the server cannot use."""


@dataclass(frozen=True)
class Callback:
    """A contributor's registered endpoint for asynchronous outcomes (MICDR_ASYNC_CALLBACKS)."""

    url: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("micdr-data")
    mongo_url: str | None = None
    mongo_database: str = "micdr"
    elasticsearch_url: str | None = None
    index_prefix: str = "micdr"
    # How soon an indexed document becomes searchable; a projection is reported done (GET
    # /health) only once a refresh has made it visible.
    index_refresh_interval: str = "1s"
    redis_url: str | None = None
    base_path: str = "/fhir"
    public_base_url: str | None = None
    allow_update_create: bool = True
    max_body_bytes: int = 32 * 1024 * 1024
    max_bundle_entries: int = 10_000
    default_page_size: int = 20
    max_page_size: int = 1000
    ig_mode: bool = True
    # Bundle.meta.profile URLs that mark a Submit MI Report (IG R20; the IG publishes none).
    report_bundle_profiles: tuple[str, ...] = (
        "http://ontariohealth.ca/fhir/micdr/StructureDefinition/bundle-submit-mi-report",
    )
    accepted_identifier_systems: tuple[str, ...] = field(default_factory=tuple)
    # IG identifier rules (app/ig/identifiers.py, docs/ig.md). The system defaults are the example
    # example.org systems of the test episodes (tests/data/ig-episodes); a deployment names
    # Ontario Health's assigned ones.
    ig_rules_scope: str = "submissions"
    contributor_kind: str = "hospital"
    hospital_org_types: tuple[str, ...] = (
        "http://terminology.hl7.org/CodeSystem/v3-RoleCode|HOSP",
        f"{CONTRIBUTOR_KIND_SYSTEM}|hospital",
    )
    ichsc_org_types: tuple[str, ...] = (f"{CONTRIBUTOR_KIND_SYSTEM}|ichsc",)
    mrn_systems: tuple[str, ...] = (f"{EXAMPLE_SYSTEMS}/hospital-a-mrn",)
    licence_systems: tuple[str, ...] = (f"{EXAMPLE_SYSTEMS}/cpso-licence",)
    upi_systems: tuple[str, ...] = (f"{EXAMPLE_SYSTEMS}/ontario-upi",)
    accession_systems: tuple[str, ...] = (f"{EXAMPLE_SYSTEMS}/hospital-a-accession",)
    placer_systems: tuple[str, ...] = (f"{EXAMPLE_SYSTEMS}/hospital-a-placer",)
    filler_systems: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Asynchronous submissions (docs/api/async.md): how long a finished submission's result is
    # kept, the worker's lease on a running one, how often a transient failure is retried, and
    # the contributors' callback endpoints.
    async_result_ttl: int = 24 * 3600
    async_lease_seconds: int = 60
    async_max_attempts: int = 8
    # Embedded: submissions run at once by this process (0: accept only; they wait, durably).
    async_concurrency: int = 8
    async_callbacks: Mapping[str, Callback] = field(default_factory=dict)
    # Bulk Data export (docs/api/export.md): how long a finished export's files are kept, the
    # resources read from the store per batch (one checkpoint each), and the size at which an
    # output file is split.
    export_retention: int = 24 * 3600
    export_batch: int = 1000
    export_file_bytes: int = 64 * 1024 * 1024
    # Signs paging links. Set MICDR_SECRET when several API processes serve one deployment;
    # otherwise each process draws its own and links do not survive a restart.
    page_secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    # Keys the analysts' pseudonymous patient key (docs/index-schema.md, Imaging episodes): the
    # same patient gets the same key in every process of a deployment while the key stays set.
    pseudonym_key: bytes = field(default=b"micdr-episodes", repr=False)
    # The turnaround alert rules (indexing/alerts.py), a JSON list; None: the defaults there.
    alert_rules: str | None = None
    # Security (docs/security.md). Authentication is on when a JWKS file or URL is configured;
    # then issuer and audience are required.
    auth_jwks_file: Path | None = None
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway: int = 30
    auth_algorithms: tuple[str, ...] = ("RS256", "ES256")
    auth_org_claim: str = "micdr_org"
    auth_patient_claim: str = "patient"
    # Audit trail: JSON lines (None: <data dir>/audit.jsonl; "-": standard output), and
    # optionally one AuditEvent resource per audited request.
    audit_log: str | None = None
    audit_events: bool = False
    # Hostile-input limits.
    max_query_params: int = 100
    max_param_length: int = 8192
    max_chain_depth: int = 3
    max_include_iterations: int = 3
    max_included: int = 1000
    # Requests per second per client (token bucket); 0 = no limit. Unset: 100 when
    # authentication is configured, none on the open (loopback, single-user) server.
    rate_limit_setting: int | None = None
    rate_burst: int = 200
    engine_timeout: float = 30.0  # seconds for one store or index call
    # Subscriptions: hosts (names or addresses) a rest-hook may reach although internal.
    subscription_allow_list: tuple[str, ...] = ()
    # $import: folders whose files a `file:` input may name (none: no file inputs), and hosts
    # an https input may reach although internal.
    import_dirs: tuple[str, ...] = ()
    import_allow_list: tuple[str, ...] = ()

    @property
    def auth_configured(self) -> bool:
        return bool(self.auth_jwks_file or self.auth_jwks_url)

    @property
    def rate_limit(self) -> int:
        if self.rate_limit_setting is not None:
            return self.rate_limit_setting
        return 100 if self.auth_configured else 0

    @property
    def audit_path(self) -> str:
        return self.audit_log or str(self.data_dir / "audit.jsonl")

    @property
    def deployment(self) -> str:
        """`embedded` when no engine URL is configured, else `full`."""
        return "full" if self.mongo_url or self.elasticsearch_url or self.redis_url else "embedded"

    @property
    def sqlite_path(self) -> Path:
        """The embedded store's file."""
        return self.data_dir / "micdr.sqlite3"

    @property
    def sqlite_index_path(self) -> Path:
        """The embedded search index's file: its own, so index writes do not wait for the store's
        write lock (bench/README.md). Derived data: deleted, it is rebuilt from the store."""
        return self.data_dir / "micdr-index.sqlite3"

    def validate(self) -> None:
        configured = [self.mongo_url, self.elasticsearch_url, self.redis_url]
        if any(configured) and not all(configured):
            raise SettingsError(
                "the full stack needs MICDR_MONGO_URL, MICDR_ELASTICSEARCH_URL and MICDR_REDIS_URL "
                "together (set all three, or none for the embedded default)"
            )
        if not re.fullmatch(r"[1-9][0-9]*(ms|s|m)", self.index_refresh_interval):
            # -1 (no refresh) would leave every projection waiting for a refresh forever
            raise SettingsError("MICDR_INDEX_REFRESH_INTERVAL must be a duration like 1s or 200ms")
        if self.contributor_kind not in ("hospital", "ichsc"):
            raise SettingsError("MICDR_CONTRIBUTOR_KIND must be hospital or ichsc")
        if self.ig_rules_scope not in ("submissions", "all"):
            raise SettingsError("MICDR_IG_RULES_SCOPE must be submissions or all")
        if self.auth_jwks_file and self.auth_jwks_url:
            raise SettingsError("set MICDR_AUTH_JWKS_FILE or MICDR_AUTH_JWKS_URL, not both")
        if self.auth_configured and not (self.auth_issuer and self.auth_audience):
            raise SettingsError(
                "authentication needs MICDR_AUTH_ISSUER and MICDR_AUTH_AUDIENCE with the JWKS"
            )
        unknown = set(self.auth_algorithms) - {"RS256", "ES256"}
        if unknown or not self.auth_algorithms:
            raise SettingsError("MICDR_AUTH_ALGORITHMS may name RS256 and ES256 only")
        if self.engine_timeout <= 0:
            raise SettingsError("MICDR_ENGINE_TIMEOUT must be a positive number of seconds")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise SettingsError("MICDR_DEFAULT_PAGE_SIZE must be between 1 and MICDR_MAX_PAGE_SIZE")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {value}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A non-negative integer."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise SettingsError(f"{name} must be a whole number (0 or more), not {raw!r}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name} must be positive, not {raw}")
    return value


def _security(env: Mapping[str, str]) -> dict[str, object]:
    """The MICDR_AUTH_*, MICDR_AUDIT_* and limit variables (docs/security.md)."""
    values: dict[str, object] = {
        "auth_jwks_file": Path(env["MICDR_AUTH_JWKS_FILE"])
        if env.get("MICDR_AUTH_JWKS_FILE")
        else None,
        "auth_jwks_url": env.get("MICDR_AUTH_JWKS_URL") or None,
        "auth_issuer": env.get("MICDR_AUTH_ISSUER") or None,
        "auth_audience": env.get("MICDR_AUTH_AUDIENCE") or None,
        "auth_leeway": _count(env, "MICDR_AUTH_LEEWAY", 30),
        "auth_org_claim": env.get("MICDR_AUTH_ORG_CLAIM") or "micdr_org",
        "auth_patient_claim": env.get("MICDR_AUTH_PATIENT_CLAIM") or "patient",
        "audit_log": env.get("MICDR_AUDIT_LOG") or None,
        "audit_events": _flag(env, "MICDR_AUDIT_EVENTS", False),
        "max_query_params": _int(env, "MICDR_MAX_QUERY_PARAMS", 100),
        "max_param_length": _int(env, "MICDR_MAX_PARAM_LENGTH", 8192),
        "max_chain_depth": _int(env, "MICDR_MAX_CHAIN_DEPTH", 3),
        "max_include_iterations": _count(env, "MICDR_MAX_INCLUDE_ITERATIONS", 3),
        "max_included": _int(env, "MICDR_MAX_INCLUDED", 1000),
        "rate_limit_setting": _count(env, "MICDR_RATE_LIMIT", -1),
        "rate_burst": _int(env, "MICDR_RATE_BURST", 200),
        "engine_timeout": _seconds(env, "MICDR_ENGINE_TIMEOUT", 30.0),
    }
    if values["rate_limit_setting"] == -1:
        values["rate_limit_setting"] = None
    if (algorithms := _list(env, "MICDR_AUTH_ALGORITHMS")) is not None:
        values["auth_algorithms"] = algorithms
    return values


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    """A comma-separated list; None when unset (the default applies), () when set empty."""
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(s.strip() for s in raw.split(",") if s.strip())


_LISTS = {
    "subscription_allow_list": "MICDR_SUBSCRIPTION_ALLOW_LIST",
    "import_dirs": "MICDR_IMPORT_DIRS",
    "import_allow_list": "MICDR_IMPORT_ALLOW_LIST",
    "hospital_org_types": "MICDR_HOSPITAL_ORG_TYPES",
    "ichsc_org_types": "MICDR_ICHSC_ORG_TYPES",
    "mrn_systems": "MICDR_MRN_SYSTEMS",
    "licence_systems": "MICDR_LICENCE_SYSTEMS",
    "upi_systems": "MICDR_UPI_SYSTEMS",
    "accession_systems": "MICDR_ACCESSION_SYSTEMS",
    "placer_systems": "MICDR_PLACER_SYSTEMS",
    "filler_systems": "MICDR_FILLER_SYSTEMS",
}


def _callbacks(env: Mapping[str, str]) -> dict[str, Callback] | None:
    """MICDR_ASYNC_CALLBACKS: `{"<contributor>": {"url": "...", "secret": "..."}, ...}`."""
    raw = env.get("MICDR_ASYNC_CALLBACKS")
    if not raw:
        return None
    problem = "MICDR_ASYNC_CALLBACKS must be a JSON object of contributor -> {url, secret}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise SettingsError(problem) from None
    if not isinstance(parsed, dict):
        raise SettingsError(problem)
    out: dict[str, Callback] = {}
    for contributor, spec in parsed.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise SettingsError(f"{problem}; {contributor!r} has no url")
        if not spec["url"].startswith(("http://", "https://")) or not spec.get("secret"):
            raise SettingsError(f"{problem}; {contributor!r} needs an http(s) url and a secret")
        out[str(contributor)] = Callback(spec["url"], str(spec["secret"]).encode())
    return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read `MICDR_*` from `env` (default: the process environment); `overrides` win (CLI flags)."""
    env = os.environ if env is None else env
    systems = tuple(s for s in env.get("MICDR_IDENTIFIER_SYSTEMS", "").split(",") if s.strip())
    values: dict[str, object] = {
        "data_dir": Path(env.get("MICDR_DATA_DIR") or "micdr-data"),
        "mongo_url": env.get("MICDR_MONGO_URL") or None,
        "mongo_database": env.get("MICDR_MONGO_DATABASE") or "micdr",
        "elasticsearch_url": env.get("MICDR_ELASTICSEARCH_URL") or None,
        "index_prefix": env.get("MICDR_INDEX_PREFIX") or "micdr",
        "index_refresh_interval": env.get("MICDR_INDEX_REFRESH_INTERVAL") or "1s",
        "redis_url": env.get("MICDR_REDIS_URL") or None,
        "public_base_url": env.get("MICDR_PUBLIC_BASE_URL") or None,
        "allow_update_create": _flag(env, "MICDR_ALLOW_UPDATE_CREATE", True),
        "max_body_bytes": _int(env, "MICDR_MAX_BODY_BYTES", 32 * 1024 * 1024),
        "max_bundle_entries": _int(env, "MICDR_MAX_BUNDLE_ENTRIES", 10_000),
        "default_page_size": _int(env, "MICDR_DEFAULT_PAGE_SIZE", 20),
        "max_page_size": _int(env, "MICDR_MAX_PAGE_SIZE", 1000),
        "ig_mode": _flag(env, "MICDR_IG_MODE", True),
        "report_bundle_profiles": tuple(
            p.strip()
            for p in env.get(
                "MICDR_REPORT_BUNDLE_PROFILES", Settings.report_bundle_profiles[0]
            ).split(",")
            if p.strip()
        ),
        "accepted_identifier_systems": tuple(s.strip() for s in systems),
        "log_level": (env.get("MICDR_LOG_LEVEL") or "INFO").upper(),
        "ig_rules_scope": (env.get("MICDR_IG_RULES_SCOPE") or "submissions").lower(),
        "contributor_kind": (env.get("MICDR_CONTRIBUTOR_KIND") or "hospital").lower(),
        "async_result_ttl": _int(env, "MICDR_ASYNC_RESULT_TTL", 24 * 3600),
        "async_lease_seconds": _int(env, "MICDR_ASYNC_LEASE_SECONDS", 60),
        "async_max_attempts": _int(env, "MICDR_ASYNC_MAX_ATTEMPTS", 8),
        "async_concurrency": _count(env, "MICDR_ASYNC_CONCURRENCY", 8),
        "export_retention": _int(env, "MICDR_EXPORT_RETENTION", 24 * 3600),
        "export_batch": _int(env, "MICDR_EXPORT_BATCH", 1000),
        "export_file_bytes": _int(env, "MICDR_EXPORT_FILE_BYTES", 64 * 1024 * 1024),
    }
    values.update(_security(env))
    if (callbacks := _callbacks(env)) is not None:
        values["async_callbacks"] = callbacks
    values.update({k: v for k, n in _LISTS.items() if (v := _list(env, n)) is not None})
    if env.get("MICDR_SECRET"):
        values["page_secret"] = env["MICDR_SECRET"].encode()
    if env.get("MICDR_ALERT_RULES"):
        values["alert_rules"] = env["MICDR_ALERT_RULES"]
    if env.get("MICDR_PSEUDONYM_KEY"):
        values["pseudonym_key"] = env["MICDR_PSEUDONYM_KEY"].encode()
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)  # type: ignore[arg-type]
    settings.validate()
    return settings
