"""How jobs run:
limits, concurrency, warm sandboxes, the queue, parts, the executor and Ray, isolation, attempts, quotas."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic_settings import BaseSettings


class JobSettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

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
