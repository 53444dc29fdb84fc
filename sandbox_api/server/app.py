"""The FastAPI application factory: builds the services bundle from settings and runs the job runner."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.orm import Session

from crypto.keyring import KeyProvider, LocalKeyring
from crypto.profile import profile_named
from crypto.shredding import VersionKeys
from executors.base import Executor, Limits
from executors.local import LocalExecutor
from executors.walls import Isolation
from policies.usage_alerts import Thresholds
from sandbox_api.clock import Clock, SystemClock
from sandbox_api.errors import DeploymentNotInitialised
from sandbox_api.server.access_trace import install_access_trace
from sandbox_api.server.app_info import app_version
from sandbox_api.server.bootstrap import deployment_initialised, open_audit_log, open_keys
from sandbox_api.server.classification import deployment_levels
from sandbox_api.server.console import install_console
from sandbox_api.server.deps import Services
from sandbox_api.server.middleware import JsonBodyLimits
from sandbox_api.server.observability.bundle import Observability
from sandbox_api.server.observability.wiring import install_observability
from sandbox_api.server.openapi_doc import install_openapi, operation_id
from sandbox_api.server.problems import install_problem_handlers
from sandbox_api.server.routes import ROUTERS
from sandbox_api.server.runner import JobRunner
from sandbox_api.server.services.alerts import ALERTS_ACTOR, AlertService
from sandbox_api.server.services.applications import ApplicationService
from sandbox_api.server.services.catalog import CatalogService
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.services.dp_budget import DpBudgetService
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.keys import KeyLifecycle
from sandbox_api.server.services.principals import PrincipalService
from sandbox_api.server.services.quotas import QuotaLimits
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.release import ReleaseFn, release
from sandbox_api.server.services.replay import ReplayService
from sandbox_api.server.services.scopes import ScopeService
from sandbox_api.server.settings import Settings
from sandbox_api.server.sso import SingleSignOn
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import open_database

ExecutorFactory = Callable[[KeyProvider, Settings], Executor]

DESCRIPTION = """
*Data usable, not visible.* Operators run aggregate SQL on protected datasets under scopes that policy
officers approve; only results that pass the disclosure checks come out, and every step is a
hash-chained audit event.

Authenticate with `Authorization: Bearer <token>`. Errors are `application/problem+json` with a stable
`code`, a `detail` that says what to do, and every `finding`; each operation lists the codes it can
answer (`x-codes`), and docs/api.md says what a client should do with each.
"""


def local_executor(keys: KeyProvider, settings: Settings) -> Executor:
    return LocalExecutor(
        key_provider=keys,
        max_workers=settings.max_concurrent_jobs,
        warm_sandboxes=settings.warm_sandboxes,
        isolation=Isolation(settings.isolation),
        first_uid=settings.sandbox_first_uid,
        hidden_paths=sandbox_hidden_paths(settings),
    )


def sandbox_hidden_paths(settings: Settings) -> tuple[Path, ...]:
    """What no sandbox may see even if it lies inside a directory the sandbox reads (the project's, say):
    the state directory, the keyring and, for SQLite, the database file's directory."""
    paths = [settings.state_dir, settings.keyring_path, settings.data_dir]
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        paths.append(Path(url.removeprefix("sqlite:///")).parent)
    return tuple(paths)


def ray_executor(keys: KeyProvider, settings: Settings) -> Executor:
    """Jobs on a Ray cluster, placed on the nodes of each table's domain.

    With ``ray_address`` the gateway joins that cluster and every worker node unwraps keys with its own
    keyring (``SANDBOX_NODE_KEYRING``). Without it, a local one-node cluster is started that serves
    every domain known now, with this deployment's keyring.
    """
    # Imported here so that a deployment on the local executor never pays for importing Ray.
    from executors.ray_cluster import KeyringFile
    from executors.ray_executor import RayExecutor

    if settings.ray_address is not None:
        return RayExecutor(address=settings.ray_address, timeout_s=float(settings.job_timeout_s))
    domains = keys.domains() if isinstance(keys, LocalKeyring) else []
    return RayExecutor(
        default_key_source=KeyringFile(str(settings.keyring_path)),
        timeout_s=float(settings.job_timeout_s),
        local_cpus=settings.ray_local_cpus,
        local_domains=domains,
        object_store_mb=settings.ray_object_store_mb,
    )


EXECUTORS: dict[str, ExecutorFactory] = {"local": local_executor, "ray": ray_executor}


def build_services(
    settings: Settings,
    *,
    clock: Clock,
    executor_factory: ExecutorFactory | None = None,
    release_fn: ReleaseFn = release,
    span_exporter: SpanExporter | None = None,
) -> Services:
    """Every service, wired. ``release_fn`` is the one release function every settlement goes through
    (``services/release.py``); a test build passes a wrapper that counts what went through it.
    ``span_exporter`` replaces the trace exporter the settings name (tests pass an in-memory one)."""
    if not deployment_initialised(settings):
        raise DeploymentNotInitialised(
            f"no deployment in {settings.state_dir}: run `sandbox init` first "
            "(it creates the keyring and the database)"
        )
    profile = profile_named(settings.crypto_profile)
    keys = open_keys(settings, clock=clock)
    db = open_database(settings.resolved_database_url)
    migrate.upgrade(db)  # a no-op when current; brings an older deployment up to date
    audit = open_audit_log(settings, db=db, keys=keys, clock=clock)
    receipts = ReceiptService(db=db, audit=audit, clock=clock, keys=keys, profile=audit.profile)
    lifecycle = KeyLifecycle(db=db, audit=audit, clock=clock, keys=keys, profile=profile)
    catalog = CatalogService(
        db=db,
        audit=audit,
        clock=clock,
        keys=keys,
        version_keys=VersionKeys(keys, key_of=profile.aead_key),
        partition_key=keys.secret("partition"),
        data_dir=settings.data_dir,
        n_parts=settings.n_parts,
        profile=profile,
        review_required=settings.catalog_review_required,
    )
    scopes = ScopeService(
        db=db,
        audit=audit,
        clock=clock,
        catalog=catalog,
        levels=deployment_levels(settings),
        profile=profile,
    )
    # One executor for the runner and for replays, so both run a job the same way.
    executor = (executor_factory or EXECUTORS[settings.executor])(keys, settings)
    observability = Observability.create(
        settings, db=db, executor=executor, clock=clock.now, span_exporter=span_exporter
    )
    jobs = JobService(
        db=db,
        audit=audit,
        clock=clock,
        catalog=catalog,
        scopes=scopes,
        results_key=profile.aead_key(keys.secret("results")),
        queue_limit=settings.queue_limit,
        quotas=quota_limits(settings),
        wake=threading.Event(),
        receipts=receipts,
        release=release_fn,
        ledger=CohortLedger(master=keys.secret("cohort-ledger"), clock=clock),
        budget=DpBudgetService(db=db, audit=audit, clock=clock),
        observer=observability.transition,
    )
    limits = Limits(
        timeout_s=float(settings.job_timeout_s),
        memory_mb=settings.job_memory_mb,
        cpu_s=settings.job_timeout_s * settings.job_threads + 10,
        threads=settings.job_threads,
    )
    runner = JobRunner(
        jobs=jobs,
        executor=executor,
        pseudonym_master=keys.secret("pseudonym"),
        limits=limits,
        max_concurrent=settings.max_concurrent_jobs,
        max_attempts=settings.job_max_attempts,
        tracing=observability.tracing,
        count_groups_below_k=settings.audit_groups_below_k,
    )
    principals = PrincipalService(
        db=db,
        audit=audit,
        clock=clock,
        keys=keys,
        token_ttl=timedelta(days=settings.token_ttl_days),
        token_max_ttl=timedelta(days=settings.token_max_ttl_days),
    )

    def suspend(session: Session, operator: str) -> Callable[[], None]:
        """Suspend ``operator`` pending review, as an admin's disable would (audited, jobs settled)."""
        principals.set_disabled(session, actor=ALERTS_ACTOR, name=operator, disabled=True)
        settled = jobs.settle_for_disabled(session, owner=operator, actor=ALERTS_ACTOR)

        def stop_running() -> None:  # after the commit, as the admin route does
            for job_id in settled.stopping:
                runner.cancel(job_id)

        return stop_running

    alerts = AlertService(
        db=db,
        audit=audit,
        clock=clock,
        scopes=scopes,
        thresholds=alert_thresholds(settings),
        history=settings.alerts_history,
        webhook_url=settings.alerts_webhook_url,
        suspend=suspend if settings.alerts_suspend else None,
    )
    if settings.alerts_enabled:
        audit.watch(alerts.notice)
    return Services(
        settings=settings,
        db=db,
        clock=clock,
        keys=keys,
        audit=audit,
        principals=principals,
        catalog=catalog,
        scopes=scopes,
        jobs=jobs,
        runner=runner,
        receipts=receipts,
        lifecycle=lifecycle,
        replay=ReplayService(
            db=db,
            audit=audit,
            clock=clock,
            keys=keys,
            lifecycle=lifecycle,
            executor=executor,
            limits=limits,
            pseudonym_master=keys.secret("pseudonym"),
            jobs=jobs,
        ),
        sso=SingleSignOn.from_settings(settings),
        observability=observability,
        applications=ApplicationService(db=db, audit=audit, clock=clock, scopes=scopes),
        alerts=alerts,
    )


def alert_thresholds(settings: Settings) -> Thresholds:
    """The deployment's thresholds for alerts on unusual use (``policies/usage_alerts.py``)."""
    return Thresholds(
        window=timedelta(minutes=settings.alerts_window_minutes),
        refusals=settings.alerts_refusals,
        near_identical=settings.alerts_near_identical,
        ledger_hits=settings.alerts_ledger_hits,
        budget_fraction=settings.alerts_budget_fraction,
        off_hours_jobs=settings.alerts_off_hours_jobs,
        download_rows=settings.alerts_download_rows,
    )


def quota_limits(settings: Settings) -> QuotaLimits:
    """The per-principal quotas of ``settings`` (``services/quotas.py``): unless set, one principal may
    run on every runner slot but one when there are several, else on the one."""
    return QuotaLimits(
        concurrent_jobs=settings.quota_concurrent_jobs or max(1, settings.max_concurrent_jobs - 1),
        queued_jobs=settings.quota_queued_jobs,
        jobs_per_hour=settings.quota_jobs_per_hour,
        cpu_seconds_per_day=float(settings.quota_cpu_seconds_per_day),
        open_long_polls=settings.quota_long_polls,
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    executor_factory: ExecutorFactory | None = None,
    release_fn: ReleaseFn = release,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """The gateway for an initialised deployment (see ``bootstrap.init_deployment``)."""
    services = build_services(
        settings,
        clock=clock or SystemClock(),
        executor_factory=executor_factory,
        release_fn=release_fn,
        span_exporter=span_exporter,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        metrics_port = services.observability.serve_metrics_port()
        services.runner.start()
        services.alerts.start()
        try:
            yield
        finally:
            services.runner.stop()
            services.alerts.stop()
            if metrics_port is not None:
                metrics_port.close()
            services.observability.close()
            services.db.dispose()

    app = FastAPI(
        title="Data Sandbox",
        version=app_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are served by the console from vendored assets (console/api_docs.py).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
    )
    app.state.services = services
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(JsonBodyLimits, max_bytes=settings.max_request_bytes)
    for router in ROUTERS:
        app.include_router(router)
    install_access_trace(app, services)
    install_observability(app, services)
    install_console(app)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory sandbox_api.server.app:app_from_env``: settings from SANDBOX_* at call time."""
    return create_app(Settings())
