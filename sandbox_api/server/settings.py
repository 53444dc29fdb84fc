"""Deployment settings: one pydantic-settings class, read only when constructed (never at import)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox_api.roles import Role

#: JWT signature algorithms single sign-on may accept: public-key ones only (RFC 7518 section 3, RFC 8037).
ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

#: ``SANDBOX_`` variables that are not deployment settings: the CLI and the client read them (the
#: gateway's address, a bearer token, the authority to trust and a client certificate), the Ray node
#: launcher reads the node keyring's path; the gateway reads the token PIN (``key_provider: pkcs11``) from
#: :data:`PKCS11_PIN_VARIABLE`, deliberately no setting so that a settings file can never hold it.
PKCS11_PIN_VARIABLE = "SANDBOX_PKCS11_PIN"
CLIENT_VARIABLES = frozenset(
    {
        PKCS11_PIN_VARIABLE,
        "SANDBOX_URL",
        "SANDBOX_TOKEN",
        "SANDBOX_NODE_KEYRING",
        "SANDBOX_CA_BUNDLE",
        "SANDBOX_CLIENT_CERT",
        "SANDBOX_CLIENT_KEY",
    }
)

# Passwords that show up in tutorials and templates: a production deployment must not run with them.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "password", "secret", "example", "placeholder", "admin"}
)


class Settings(BaseSettings):
    """Every knob of a deployment. Documented one by one in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="forbid")

    state_dir: Path = Field(
        Path(".sandbox-state"),
        description=(
            "Directory holding the embedded deployment: `metadata.db` (SQLite), `keyring.json` (mode "
            "0600), `data/` (encrypted Parquet parts). Created with mode 0700 by `sandbox init`."
        ),
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the metadata database. Unset means SQLite at `<state_dir>/metadata.db` "
            "(WAL mode). Use `postgresql+psycopg://…` in production."
        ),
    )
    host: str = Field(
        "127.0.0.1",
        description=("Interface `sandbox serve` binds to."),
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description=("Port `sandbox serve` listens on."),
    )
    dev_mode: bool = Field(
        True,
        description=(
            "Development mode. Outside it, placeholder secrets (a database password such as `changeme` "
            "or `password`) are refused at start-up."
        ),
    )
    max_upload_mb: PositiveInt = Field(
        256,
        description=(
            "Largest dataset upload (whole multipart body), in MiB. Enforced while streaming: the "
            "upload is cut off with 413 as soon as it passes the cap."
        ),
    )
    catalog_review_required: bool = Field(
        True,
        description=(
            "A new dataset version is stored as a draft with its validation report and goes live only "
            "after a second steward of the same domain publishes it (four eyes; the uploader cannot). "
            "`false`: an upload is published at once, recorded as published without review."
        ),
    )
    max_request_kb: PositiveInt = Field(
        256,
        description=(
            "Largest JSON request body (and largest non-file multipart field, e.g. the manifest), in "
            "KiB; larger ones get 413."
        ),
    )
    job_timeout_s: PositiveInt = Field(
        300,
        description=(
            "Wall-clock limit of one job's sandbox; a job past it is killed and fails with "
            "`execution-timeout`."
        ),
    )
    job_memory_mb: PositiveInt = Field(
        2048,
        description=("Memory limit of one job's engine, in MiB."),
    )
    job_threads: PositiveInt = Field(
        2,
        description=(
            "Threads one job may use to decrypt, decode, query and sketch its data; float sums are "
            "made exact, so results replay bit for bit on any number (queries that cannot be made "
            "order-independent run on one thread)."
        ),
    )
    max_concurrent_jobs: PositiveInt = Field(
        2,
        description=("Jobs running at the same time (runner threads and sandbox processes)."),
    )
    warm_sandboxes: NonNegativeInt = Field(
        1,
        description=(
            "Sandbox processes of the local executor started ahead of their job: each is hardened, "
            "opens its engine and walks a job's path once on synthetic data, then waits for one job (it"
            " holds no key or data before). Saves a small job the fork and the engine's start-up; `0` "
            "forks every sandbox when its job arrives. Each costs an idle process (about 175 MB "
            "resident, much of it shared with the fork server)."
        ),
    )
    queue_limit: PositiveInt = Field(
        100,
        description=(
            "Queued jobs allowed to wait; a submission beyond it is refused with 429 and `Retry-After`."
        ),
    )
    n_parts: PositiveInt = Field(
        8,
        description=(
            "Parquet parts per table of a new dataset version (rows placed by a keyed hash of the "
            "privacy unit)."
        ),
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description=(
            "Job executor backend: `local` (forked sandbox processes on this machine) or `ray` (Ray "
            "tasks on the nodes of each table's domain, each running the same forked sandbox; see "
            "docs/ray.md)."
        ),
    )
    ray_address: str | None = Field(
        None,
        description=(
            "With `executor=ray`: address of an existing Ray cluster (`HOST:6379`); its worker nodes "
            "unwrap keys with their own keyrings. Unset: a local one-node Ray cluster serving every "
            "domain known at start-up, with this deployment's keyring."
        ),
    )
    ray_local_cpus: PositiveInt | None = Field(
        None,
        description=("CPUs of the local Ray cluster (unset: all of this machine's)."),
    )
    ray_object_store_mb: PositiveInt = Field(
        256,
        description=("Object store of the local Ray cluster, in MiB (only aggregates travel through it)."),
    )
    crypto_profile: Literal["international", "gm"] = Field(
        "international",
        description=(
            "Algorithms of the deployment, chosen at `sandbox init` and fixed after it: `international` "
            "(SHA-256, AES-256-GCM, Ed25519) or `gm` (SM3, SM4-GCM, SM2; the Chinese national algorithms)."
            " `init` creates the signing key of the profile; a server started with the other profile "
            "refuses to start. See docs/security.md."
        ),
    )
    key_provider: Literal["local", "pkcs11"] = Field(
        "local",
        description=(
            "Where the deployment's keys live, chosen at `sandbox init` and fixed after it: `local` (the "
            "keyring file in the state directory) or `pkcs11` (a hardware token: the domain key-encryption "
            "keys and the signing key are made in it and never leave it). `pkcs11` needs the "
            "`international` profile and the `local` executor. See docs/security.md."
        ),
    )
    pkcs11_library: str | None = Field(
        None,
        description=("The token's PKCS#11 module (a shared library path), with `key_provider: pkcs11`."),
    )
    pkcs11_token_label: str | None = Field(
        None,
        description=("The label of the token that holds the deployment's keys, with `key_provider: pkcs11`."),
    )
    pkcs11_pin_file: Path | None = Field(
        None,
        description=(
            "A file holding the token's user PIN (readable by the service only); otherwise the PIN comes "
            f"from the `{PKCS11_PIN_VARIABLE}` environment variable. Never put the PIN itself in settings."
        ),
    )
    audit_checkpoint_every: PositiveInt = Field(
        1000,
        description=("A signed checkpoint of the audit chain head is stored every this many events."),
    )
    audit_witnesses_required: list[str] = Field(
        default_factory=list,
        description=(
            'The witnesses that must co-sign every audit checkpoint (docs/auditing.md, "Witnessed '
            'checkpoints"): witness names, `domain:NAME` (some witness of that domain) or `domain:*` '
            "(every registered domain witness). Reported per checkpoint by `GET /v1/audit/checkpoints` "
            "and carried in the audit bundle, where offline verification names what is missing."
        ),
    )
    audit_checkpoint_minutes: PositiveInt = Field(
        60,
        description=(
            "A signed checkpoint is also stored with the first event appended once this many minutes "
            "have passed since the last checkpoint, so a quiet deployment still gets regular signed "
            "heads. Whichever of the two limits is reached first triggers the checkpoint."
        ),
    )
    classification_levels_file: Path | None = Field(
        None,
        description=(
            "A YAML or JSON file defining the deployment's classification levels and the floors each "
            "sets (minimum k, uses per column class, masks, differential privacy, Python, approvals) and "
            "the default level of data whose manifest declares none (docs/governance.md). Unset: the "
            "built-in levels L1 (public) to L4 (highly sensitive), default L3."
        ),
    )
    classification_default_level: str | None = Field(
        None,
        description=(
            "The level of a dataset version whose manifest declares none, overriding the levels' own "
            "default; it must be one of the defined levels."
        ),
    )
    audit_groups_below_k: bool = Field(
        False,
        description=(
            "Count, inside the sandbox, the groups a SQL job's k rule removes, and write the number "
            "in the job's `job.released` audit event for auditors (never shown to operators). It is a "
            "second pass over the job's data: about 1.15x the job's time (docs/disclosure.md)."
        ),
    )
    audit_read_trace: bool = Field(
        True,
        description=(
            "Record every authenticated read (each GET under /v1, and dry runs) as a `read.*` audit "
            "event naming who asked, for which ids and filters, and the answer's status "
            "(docs/governance.md). Off only where another layer keeps the same trace."
        ),
    )
    audit_read_flush_ms: PositiveInt = Field(
        200,
        description=(
            "Read events wait at most this many milliseconds before one transaction chains them, so "
            "reads cost no write of their own; a crash loses at most this window's reads."
        ),
    )
    audit_read_flush_events: PositiveInt = Field(
        256,
        description="Read events are also chained as soon as this many are waiting.",
    )
    isolation: Literal["strict", "relaxed", "none"] = Field(
        "strict",
        description=(
            "Walls around each job's sandbox process (docs/security.md). `strict`: every wall (network, "
            "mount and user namespaces, its own unprivileged uid, no new privileges, the seccomp filter, "
            "Landlock where the kernel offers it) or the job does not run (`sandbox-wall-down`). "
            "`relaxed`: every wall the platform allows, the others reported in the job's result. `none`: "
            "no namespaces, uid, seccomp or Landlock (development on platforms without them). Each "
            "result records its walls in `engine.walls`."
        ),
    )
    sandbox_first_uid: PositiveInt = Field(
        2_000_000_000,
        le=2**32 - 1 - 2**22,  # first_uid + any pid must stay a valid uid
        description=(
            "With a gateway running as root: each sandbox runs as uid and gid `sandbox_first_uid + its "
            "pid`, so the range `[sandbox_first_uid, sandbox_first_uid + 4194304)` must belong to no "
            "user or group. A gateway that is not root runs its sandboxes as `nobody` in a user "
            "namespace instead."
        ),
    )
    job_max_attempts: PositiveInt = Field(
        2,
        description=(
            "Attempts a job gets when a gateway restart interrupts it while running; after the last one"
            " it fails with the reason."
        ),
    )
    quota_concurrent_jobs: PositiveInt | None = Field(
        None,
        description=(
            "Jobs one principal may have running at once. Unset: every runner slot but one when there are"
            " several (so one operator's backlog never holds them all), else one. Runner slots go round-"
            "robin by owner, so another operator's job waits at most one job's time."
        ),
    )
    quota_queued_jobs: PositiveInt = Field(
        50,
        description=(
            "Jobs one principal may have waiting; one more is refused with 429, `Retry-After` and the"
            " limit's name (the deployment-wide `queue_limit` still applies)."
        ),
    )
    quota_jobs_per_hour: PositiveInt = Field(
        600,
        description=(
            "Jobs one principal may submit in any hour (rejected ones not counted); one more is refused"
            " with 429 and the moment the window frees a place."
        ),
    )
    quota_cpu_seconds_per_day: PositiveInt = Field(
        8 * 3600,
        description=(
            "CPU seconds one principal's jobs may use in any 24 hours (measured in the sandbox); once"
            " spent, submissions are refused with 429 until enough has aged out of the window."
        ),
    )
    quota_long_polls: PositiveInt = Field(
        8,
        description=(
            "Requests one principal may hold open waiting for jobs to end (`GET /v1/jobs/{id}?wait=`);"
            " one more is refused with 429."
        ),
    )
    alerts_enabled: bool = Field(
        True,
        description=(
            "Watch refusals, jobs, result reads and privacy-budget charges per operator and scope, and "
            "raise alerts on unusual use for auditors (`GET /v1/alerts`; docs/governance.md). Detection "
            "runs on a background thread after each event, never in the request."
        ),
    )
    alerts_window_minutes: PositiveInt = Field(
        60, description="The window every alert rule counts over, in minutes."
    )
    alerts_refusals: PositiveInt = Field(
        5,
        description="Refused requests and rejected jobs of one operator under one scope within the window "
        "that raise a `refusal_burst` alert.",
    )
    alerts_near_identical: PositiveInt = Field(
        4,
        description="Queries of one operator under one scope within the window, each differing from another "
        "by one WHERE condition only (normalised with sqlglot), that raise `near_identical_queries`.",
    )
    alerts_ledger_hits: PositiveInt = Field(
        3,
        description="Result rows the released-cohort ledger withheld from one operator's jobs under one "
        "scope within the window that raise `ledger_hits`.",
    )
    alerts_budget_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of a scope's differential-privacy budget one operator spends within the window "
        "that raises `budget_burn`.",
    )
    alerts_off_hours_jobs: PositiveInt = Field(
        1,
        description="Jobs outside the hours their scope's purpose implies (the scope's `hours:`) within "
        "the window that raise `off_hours`.",
    )
    alerts_download_rows: PositiveInt = Field(
        100_000,
        description="Result rows one operator reads under one scope within the window that raise "
        "`download_volume`.",
    )
    alerts_history: PositiveInt = Field(
        200,
        description="The most records of each kind (jobs, refusals, reads, charges) one detection reads: "
        "bounds its cost whatever an operator does.",
    )
    alerts_webhook_url: str | None = Field(
        None,
        description="Also POST every alert as JSON to this URL (a failed delivery is audited as "
        "`alert.webhook.failed`; the alert stays in the API). Unset: no webhook.",
    )
    alerts_suspend: bool = Field(
        False,
        description="Suspend the operator an alert is about, pending review: the operator is disabled "
        "(audited, queued jobs cancelled) until an admin enables them again.",
    )

    tls_cert_file: Path | None = Field(
        None,
        description=(
            "Certificate chain (PEM) `sandbox serve` presents. With `tls_key_file` the gateway speaks "
            "HTTPS only (protocol versions and ciphers: the system OpenSSL's defaults); unset: plain "
            "HTTP, for loopback or behind a TLS proxy."
        ),
    )
    tls_key_file: Path | None = Field(
        None,
        description="Private key (PEM) of `tls_cert_file`; keep it readable by the gateway's user only.",
    )
    tls_client_ca_file: Path | None = Field(
        None,
        description=(
            "Certificate authorities (PEM) that client certificates must chain to, with `tls_client_cert`."
        ),
    )
    tls_client_cert: Literal["none", "optional", "required"] = Field(
        "none",
        description=(
            "Client certificates at the TLS handshake: `none`; `optional` (checked against "
            "`tls_client_ca_file` when sent); `required` (a client without one from that authority "
            "cannot connect: for gateways only executors, nodes and known machines reach). A bearer "
            "token is still needed on top."
        ),
    )
    token_ttl_days: PositiveInt = Field(
        90,
        description=(
            "Lifetime of a bearer token issued without an explicit one (`sandbox token issue --days`); "
            "each token's expiry is shown when it is issued and in `sandbox token list`. Tokens issued "
            "before expiries existed expire this many days after their creation."
        ),
    )
    token_max_ttl_days: PositiveInt = Field(
        365,
        description="Longest lifetime an administrator may give a bearer token, in days.",
    )
    oidc_issuer: str | None = Field(
        None,
        description=(
            "Single sign-on: the OpenID Connect issuer (`iss`) whose signed JWTs are accepted as bearer "
            "tokens beside the service's own. Unset: single sign-on is off. Needs `oidc_audience` and "
            "`oidc_jwks_url` (docs/security.md)."
        ),
    )
    oidc_audience: str | None = Field(
        None,
        description="Single sign-on: the audience (`aud`) a JWT must name: this service's client id.",
    )
    oidc_jwks_url: str | None = Field(
        None,
        description=(
            "Single sign-on: the issuer's JSON Web Key Set (`jwks_uri`). Must be `https://` unless the "
            "host is loopback."
        ),
    )
    oidc_algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256"),
        description=(
            "Single sign-on: signature algorithms accepted, asymmetric only (RS*, PS*, ES*, EdDSA); "
            "`HS*` and `none` are refused so a public key can never serve as an HMAC secret."
        ),
    )
    oidc_name_claim: str = Field(
        "preferred_username",
        description="Single sign-on: the claim that names the principal (audit actor, job owner, grantee).",
    )
    oidc_role_claim: str = Field(
        "roles",
        description=(
            "Single sign-on: the claim (a string or a list) whose values `oidc_role_map` maps to a role."
        ),
    )
    oidc_role_map: dict[str, str] = Field(
        {},
        description=(
            'Single sign-on: claim value to role, e.g. `{"sandbox-analyst": "operator"}`. A token whose '
            "values map to no role, or to two different roles, is refused."
        ),
    )
    oidc_domain_claim: str = Field(
        "domain",
        description="Single sign-on: the claim that gives a steward's or domain administrator's domain.",
    )
    oidc_groups_claim: str = Field(
        "groups",
        description="Single sign-on: the claim (a list of names) that gives the principal's groups.",
    )
    oidc_leeway_s: NonNegativeInt = Field(
        30,
        description="Single sign-on: clock skew allowed on `exp`, `nbf` and `iat`, in seconds.",
    )
    oidc_jwks_cache_s: PositiveInt = Field(
        300,
        description=(
            "Single sign-on: how long the issuer's keys are cached, in seconds. A token signed by an "
            "unknown key id refetches the set at once (key rotation), at most every `oidc_jwks_refetch_s`."
        ),
    )
    oidc_jwks_refetch_s: PositiveInt = Field(
        10,
        description=(
            "Single sign-on: least time between two fetches of the key set caused by unknown key ids, so "
            "made-up key ids cannot turn every request into a request to the issuer."
        ),
    )
    oidc_client_id: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: this service's client id at the issuer (a public client "
            "using PKCE). Unset: `oidc_audience`, the audience its ID tokens name."
        ),
    )
    oidc_authorize_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the issuer's authorisation endpoint. Unset (with "
            "`oidc_token_url`): read from the issuer's `/.well-known/openid-configuration`."
        ),
    )
    oidc_token_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the issuer's token endpoint. Unset (with "
            "`oidc_authorize_url`): read from the issuer's discovery document."
        ),
    )
    oidc_redirect_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the callback address registered at the issuer, "
            "`https://HOST/console/sign-in/sso/callback`. Unset: the address the browser reached."
        ),
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description=(
            "Log lines of `sandbox serve`: `json` (one JSON object a line: time, level, logger, message, "
            "the request id, and the trace and span ids when tracing is on) or `text` (for a terminal)."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description=("Lowest level of the log lines `sandbox serve` writes (standard error)."),
    )
    request_id_header: str = Field(
        "X-Request-ID",
        min_length=1,
        description=(
            "Header that carries a request's id: taken from the request when it holds 1 to 64 letters, "
            "digits, `.`, `_` or `-` (so a proxy's id is kept), made up otherwise; echoed in the response "
            "and written on every log line of the request."
        ),
    )
    metrics_enabled: bool = Field(
        True,
        description=(
            "Collect Prometheus metrics and serve them at `GET /metrics` (admin or auditor token). Off: "
            "nothing is collected and `/metrics` answers 404."
        ),
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=(
            "Also serve the metrics without a token on `127.0.0.1:<metrics_port>` (loopback only), for a "
            "scraper or agent on the same machine. Unset: only the protected `/metrics` route."
        ),
    )
    trace_exporter: Literal["off", "console"] = Field(
        "off",
        description=(
            "Where OpenTelemetry spans go: `off` (none are recorded) or `console` (one JSON document per "
            "span on standard output, for a log shipper or a collector's file receiver). Spans follow a "
            "request through the gateway, the job runner and the executor (docs/operations.md)."
        ),
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of traces recorded when `trace_exporter` is on (0 to 1); a request that arrives with a "
            "sampled W3C `traceparent` is always recorded."
        ),
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.dev_mode or self.database_url is None:
            return self
        password = urlsplit(self.database_url).password
        if password is not None and password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "SANDBOX_DATABASE_URL uses a placeholder password; set a real one or enable SANDBOX_DEV_MODE"
            )
        return self

    @model_validator(mode="after")
    def _check_key_provider(self) -> Settings:
        if self.key_provider != "pkcs11":
            return self
        if not self.pkcs11_library or not self.pkcs11_token_label:
            raise ValueError("key_provider pkcs11 needs pkcs11_library and pkcs11_token_label")
        if self.crypto_profile != "international":
            raise ValueError(
                "key_provider pkcs11 serves the international profile only (no SM4/SM2 in PKCS#11)"
            )
        if self.executor != "local":
            raise ValueError("key_provider pkcs11 needs the local executor (Ray nodes read a keyring file)")
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both tls_cert_file and tls_key_file (or neither)")
        if self.tls_client_cert != "none" and (self.tls_cert_file is None or self.tls_client_ca_file is None):
            raise ValueError(
                "tls_client_cert needs TLS on (tls_cert_file, tls_key_file) and tls_client_ca_file"
            )
        return self

    @model_validator(mode="after")
    def _check_single_sign_on(self) -> Settings:
        for algorithm in self.oidc_algorithms:
            if algorithm not in ASYMMETRIC_JWT_ALGORITHMS:
                raise ValueError(
                    f"oidc_algorithms: {algorithm!r} is refused; use asymmetric ones: "
                    + ", ".join(sorted(ASYMMETRIC_JWT_ALGORITHMS))
                )
        roles = {r.value for r in Role}
        for value, role in self.oidc_role_map.items():
            if role not in roles:
                raise ValueError(f"oidc_role_map: {value!r} maps to {role!r}, which is no role")
        if self.oidc_issuer is None:
            return self
        if not self.oidc_audience or not self.oidc_jwks_url:
            raise ValueError("single sign-on (oidc_issuer) needs oidc_audience and oidc_jwks_url")
        for setting in ("oidc_jwks_url", "oidc_authorize_url", "oidc_token_url"):
            url = getattr(self, setting)
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme != "https" and parts.hostname not in {"127.0.0.1", "::1", "localhost"}:
                raise ValueError(f"{setting} must be https:// (plain http only on loopback)")
        if (self.oidc_authorize_url is None) != (self.oidc_token_url is None):
            raise ValueError("oidc_authorize_url and oidc_token_url go together (or neither: discovery)")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, or SQLite inside the state directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'metadata.db').resolve()}"

    @property
    def keyring_path(self) -> Path:
        return self.state_dir / "keyring.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def upload_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_kb * 1024


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """The ``SANDBOX_`` variables of ``environ`` that name no setting (typos, removed settings).

    pydantic-settings ignores them silently; ``sandbox serve`` reports them at start-up instead.

    >>> unknown_environment({"SANDBOX_PORT": "8000", "SANDBOX_JOB_TIMEOUTS": "5", "HOME": "/root"})
    ['SANDBOX_JOB_TIMEOUTS']
    """
    known = {"SANDBOX_" + name.upper() for name in Settings.model_fields} | CLIENT_VARIABLES
    return sorted(k for k in environ if k.upper().startswith("SANDBOX_") and k.upper() not in known)


def settings_table() -> str:
    """The Markdown table of every setting (name, default, description), as docs/settings.md holds it.

    Generated from the fields themselves so the documentation cannot drift (a test compares them).

    >>> settings_table().splitlines()[2].startswith("| `state_dir` | `.sandbox-state` |")
    True
    """
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = (
            "unset"
            if default is None
            else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        )
        lines.append(f"| `{name}` | {shown} | {info.description or ''} |")
    return "\n".join(lines)
