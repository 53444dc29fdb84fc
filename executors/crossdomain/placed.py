"""Running a cross-domain job on executors: each domain's part on its own sandboxes, the gateway here.

``run_cross_domain(executor, spec)`` takes a spec with ``cross_domain`` set and runs the protocol
(``protocol.py`` for the steps) as rounds. Each round is an ordinary ``JobSpec`` naming the tables
of **one** domain only, so the executor unwraps that domain's data key alone and hands it to a fresh
sandbox of its own; on Ray the round is placed on a node holding that domain's resource, as any job
on that domain's data. Between rounds only protocol messages move (``wire``: blinded tokens, shares,
share sums, group keys), and each domain's blinding key travels only sealed under that domain's own
per-job key. This process plays the gateway: it matches, adds its own shares and builds the table
with its ``_sbx_units`` column, which goes through the one release function like any SQL result.

Cells below ``min_units`` are never summed and never enter the table; the operator's ORDER BY and
LIMIT apply afterwards, to cells that may be released only. When the job names a scope lineage, those
cells get an ``_sbx_sketch`` cohort sketch for the released-cohort ledger (``ledger.py``: one
more exchange with both domains, beside the answers).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pandas as pd
import pyarrow as pa

from crypto.psi import Blinders
from executors.base import Executor, JobSpec, ResultTable
from executors.crossdomain import wire
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.gateway_party import Cell, Gateway, Select
from executors.crossdomain.job import CrossDomainJob, PartyRound, Step
from executors.crossdomain.ledger import cell_sketches
from executors.crossdomain.messages import DecryptRequest, Payloads, ReblindedBatches, Reply, Request
from executors.crossdomain.plan import Side
from executors.crossdomain.protection import Protection
from executors.crossdomain.rounds import GATEWAY, OTHER, OWN
from executors.dp_sampler import draw
from executors.errors import ExecutionCancelled
from policies.cohorts.cells import SKETCH
from policies.dp.cost import threshold_measurement
from policies.dp.keys import key_of

PROTOCOL = "ecdh-psi+intersection-sum (additive shares)"
#: The protocol as the engine record names it, by how values were handed over.
PROTOCOLS = {
    Protection.SHARES: PROTOCOL,
    Protection.PAILLIER: "ecdh-psi+intersection-sum (paillier)",
}


@dataclass(frozen=True)
class Crossing:
    """One message as it crossed: from which party to which, in which round, and its bytes."""

    sender: str  # "left", "right" or "gateway"
    recipient: str
    step: str
    data: bytes


Observer = Callable[[Crossing], None]


def run_job(executor: Executor, spec: JobSpec) -> ResultTable:
    """Run any job: a cross-domain one as rounds (below), every other one as the executor runs it."""
    if spec.cross_domain is not None:
        return run_cross_domain(executor, spec)
    return executor.run(spec)


class Placing:
    """An executor that runs cross-domain jobs as rounds on ``inner`` (``Executor`` protocol), so that
    cancelling such a job stops the round running and starts no other."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._rounds: dict[str, set[str]] = {}  # cross-domain job id -> ids of its rounds running
        self._cancelled: set[str] = set()

    def run(self, spec: JobSpec) -> ResultTable:
        if spec.cross_domain is None:
            return self._inner.run(spec)
        with self._lock:
            self._rounds[spec.job_id] = set()
            self._cancelled.discard(spec.job_id)
        try:
            return run_cross_domain(_Tracked(self, spec.job_id), spec)
        finally:
            with self._lock:
                self._rounds.pop(spec.job_id, None)
                self._cancelled.discard(spec.job_id)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            rounds = self._rounds.get(job_id)
            if rounds is None:
                return self._inner.cancel(job_id)
            self._cancelled.add(job_id)
            running = list(rounds)
        for round_id in running:
            self._inner.cancel(round_id)
        return True

    def close(self) -> None:
        self._inner.close()

    def _start(self, job_id: str, round_id: str) -> None:
        with self._lock:
            if job_id in self._cancelled:
                raise ExecutionCancelled(f"job {job_id} was cancelled")
            self._rounds.setdefault(job_id, set()).add(round_id)

    def _end(self, job_id: str, round_id: str) -> None:
        with self._lock:
            self._rounds.get(job_id, set()).discard(round_id)


@dataclass(frozen=True)
class _Tracked:
    """The rounds of one job, run on the inner executor with their ids on record."""

    placing: Placing
    job_id: str

    def run(self, spec: JobSpec) -> ResultTable:
        self.placing._start(self.job_id, spec.job_id)
        try:
            return self.placing._inner.run(spec)
        finally:
            self.placing._end(self.job_id, spec.job_id)

    def cancel(self, job_id: str) -> bool:
        return self.placing._inner.cancel(job_id)

    def close(self) -> None:
        return None


def run_cross_domain(executor: Executor, spec: JobSpec, *, observe: Observer | None = None) -> ResultTable:
    """The gateway's table of ``spec``'s cross-domain job; ``observe`` sees every message that crosses
    a party boundary (tests read them as the receivers would)."""
    job = spec.cross_domain
    if job is None:
        raise CrossDomainProtocolError("the spec is not a cross-domain job")
    started = time.perf_counter()
    run = _Run(executor, spec, job, observe)
    sides = (Side.LEFT, Side.RIGHT)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"xd-{spec.job_id[:8]}") as pool:
        public = dict(zip(sides, pool.map(run.hello, sides), strict=True))
        blind = dict(
            zip(sides, pool.map(lambda side: run.blind(side, public[side.other]), sides), strict=True)
        )
        blinded = {side: out[OTHER] for side, out in blind.items()}
        reblinded = list(pool.map(lambda side: run.reblind(side, blinded[side.other]), sides))
        gateway = Gateway(job.plan, min_units=job.min_units, select=gateway_selection(job))
        matched: dict[Side, ReblindedBatches] = {}
        for data in reblinded:
            tokens = wire.decode(data)
            if not isinstance(tokens, ReblindedBatches):
                raise CrossDomainProtocolError("the gateway expected re-blinded batches")
            gateway.receive_tokens(tokens)
            matched[tokens.origin] = tokens
        for side in sides:
            payloads = wire.decode(blind[side][GATEWAY])
            if not isinstance(payloads, Payloads) or payloads.origin is not side:
                raise CrossDomainProtocolError("the gateway expected a domain's own payloads")
            gateway.receive_payloads(payloads)
        # The gateway's group operations for the ledger run over its cores; the workers start while it
        # matches.
        with _blinders(run.keeps_ledger) as blinders:
            if run.keeps_ledger:  # the released cells' people are at most the left domain's tokens
                blinders.warm(sum(len(batch) for batch in matched[Side.LEFT].batches))
            clock = time.perf_counter()
            pending = gateway.match()
            run.timings["gateway_match_s"] = time.perf_counter() - clock
            # The ledger's exchange (released cells' tokens, ``ledger.py``) runs beside the answers.
            sketching = pool.submit(run.sketches, gateway.released(pending), matched, blinders)
            replies = list(pool.map(lambda item: run.answer(item[0], item[1], blinded), pending.requests))
            sketches = sketching.result()
            run.timings["gateway_workers_cpu"] = blinders.worker_cpu_s
    table = _ordered(gateway.table(pending, replies, hidden=sketches), job)
    engine = {**run.engine, "cross_domain": PROTOCOLS[job.protection]}
    timings = {**run.timings, "cross_domain_s": time.perf_counter() - started}
    return ResultTable(
        arrow_ipc=_ipc(table),
        row_count=len(table),
        timings=timings,
        engine=engine,
        parts=tuple(run.part_record(side) for side in sides),
    )


class _Run:
    """The rounds of one job, with what each domain sent (for the audit record of its part)."""

    def __init__(self, executor: Executor, spec: JobSpec, job: CrossDomainJob, observe: Observer | None):
        self._executor = executor
        self._spec = spec
        self._job = job
        self._observe = observe
        self._sealed: dict[Side, bytes] = {}
        self._sent: dict[Side, dict[str, int]] = {side: {} for side in Side}
        self._lock = threading.Lock()  # rounds of both domains (and the gateway's stages) run at once
        self.timings: dict[str, float] = {}
        self.engine: dict[str, str] = {}

    def hello(self, side: Side) -> bytes:
        out = self._round(side, Step.HELLO)
        self._cross(side.value, side.other.value, Step.HELLO, out[OTHER])
        return out[OTHER]

    def blind(self, side: Side, peer_public: bytes) -> dict[str, bytes]:
        out = self._round(side, Step.BLIND, peer_public=peer_public)
        self._sealed[side] = out[OWN]
        self._cross(side.value, side.other.value, Step.BLIND, out[OTHER])
        self._cross(side.value, GATEWAY, Step.BLIND, out[GATEWAY])
        return out

    def reblind(self, side: Side, other_blinded: bytes) -> bytes:
        out = self._round(side, Step.REBLIND, incoming=other_blinded, sealed=self._sealed[side])
        self._cross(side.value, GATEWAY, Step.REBLIND, out[GATEWAY])
        return out[GATEWAY]

    def answer(self, side: Side, message: Request, blinded: Mapping[Side, bytes]) -> Reply:
        request = wire.encode(message)
        self._cross(GATEWAY, side.value, Step.ANSWER, request)
        if isinstance(message, DecryptRequest):  # Paillier: the owner decrypts, with its sealed key
            out = self._round(side, Step.ANSWER, incoming=request, sealed=self._sealed[side])
        else:  # shares: the other domain adds up its shares, which came with the owner's tokens
            out = self._round(side, Step.ANSWER, incoming=request, held=blinded[message.origin])
        self._cross(side.value, GATEWAY, Step.ANSWER, out[GATEWAY])
        reply = wire.decode(out[GATEWAY])
        if not isinstance(reply, Reply):
            raise CrossDomainProtocolError("an answer round returned no reply")
        return reply

    @property
    def keeps_ledger(self) -> bool:
        """Whether the job's released cells get cohort sketches (its scope keeps a ledger)."""
        return bool(self._job.lineage) and self._spec.cohorts is not None

    def sketches(
        self, cells: Sequence[Cell], tokens: Mapping[Side, ReblindedBatches], blinders: Blinders
    ) -> dict[str, list[bytes]]:
        """The ``_sbx_sketch`` column of the released cells for the released-cohort ledger
        (``ledger.py``), or none when the job's scope keeps no ledger."""
        request = self._spec.cohorts
        if not self.keeps_ledger or request is None or Side.LEFT not in tokens:
            return {}
        sketches = cell_sketches(
            cells,
            tokens[Side.LEFT].batches,
            request=request,
            strip=self.unblind,
            blinders=blinders,
            timings=self.timings,
        )
        return {SKETCH: sketches}

    def unblind(self, side: Side, tokens: tuple[bytes, ...]) -> tuple[bytes, ...]:
        request = wire.encode(ReblindedBatches(side, (tokens,)))
        self._cross(GATEWAY, side.value, Step.UNBLIND, request)
        out = self._round(side, Step.UNBLIND, incoming=request, sealed=self._sealed[side])
        self._cross(side.value, GATEWAY, Step.UNBLIND, out[GATEWAY])
        reply = wire.decode(out[GATEWAY])
        if not isinstance(reply, ReblindedBatches) or reply.origin is not side or len(reply.batches) != 1:
            raise CrossDomainProtocolError("an unblind round returned no unblinded tokens")
        return reply.batches[0]

    def part_record(self, side: Side) -> Mapping[str, object]:
        part = self._job.part(side)
        tables = [t for t in self._spec.tables if t.sql_name in part.sql_names]
        return {
            "side": side.value,
            "domain": part.domain,
            "dataset": part.dataset,
            "inputs": [
                {"dataset": f"{t.domain}/{t.dataset}", "table": t.table, "version_id": t.version_id}
                for t in tables
            ],
            "part_sql_sha256": hashlib.sha256(part.sql.encode()).hexdigest(),
            "sent_bytes": dict(sorted(self._sent[side].items())),
        }

    def _round(
        self,
        side: Side,
        step: Step,
        *,
        incoming: bytes = b"",
        sealed: bytes = b"",
        held: bytes = b"",
        peer_public: bytes = b"",
    ) -> dict[str, bytes]:
        part = self._job.part(side)
        tables = tuple(t for t in self._spec.tables if t.sql_name in part.sql_names)
        if not tables or any(t.domain != part.domain for t in tables):
            raise CrossDomainProtocolError(f"the {side.value} part must read its own domain's tables only")
        spec = replace(
            self._spec,
            job_id=f"{self._spec.job_id}#{side.value}-{step.value}",
            sql=part.sql,
            tables=tables,
            # Only what this part's SQL names: a DP job's sampling key is bound for the parts that
            # sample (a register is not sampled, and the engine refuses a parameter it does not use).
            parameters={k: v for k, v in (self._spec.parameters or {}).items() if _names(part.sql, k)},
            python_or_mock=None,
            cohorts=None,
            cross_domain=None,
            party=PartyRound(
                job_id=self._spec.job_id,
                step=step,
                side=side,
                plan=self._job.plan,
                sealed_state=sealed,
                incoming=incoming,
                held=held,
                peer_public=peer_public,
                lineage=self._job.lineage,
                protection=self._job.protection,
            ),
        )
        result = self._executor.run(spec)
        with self._lock:
            for name, seconds in result.timings.items():
                key = f"{side.value}_{name}"
                self.timings[key] = self.timings.get(key, 0.0) + float(seconds)
            self.engine.update({k: str(v) for k, v in result.engine.items()})
        table = result.to_arrow()
        if table.column_names != ["recipient", "message"]:
            raise CrossDomainProtocolError("a domain's round returned something other than messages")
        out: dict[str, bytes] = {}
        for recipient, message in zip(
            table.column("recipient").to_pylist(), table.column("message").to_pylist(), strict=True
        ):
            out[str(recipient)] = bytes(message)
        return out

    def _cross(self, sender: str, recipient: str, step: Step, data: bytes) -> None:
        if sender in (Side.LEFT.value, Side.RIGHT.value):
            with self._lock:
                sent = self._sent[Side(sender)]
                sent[recipient] = sent.get(recipient, 0) + len(data)
        if self._observe is not None:
            self._observe(Crossing(sender, recipient, step.value, data))


def _blinders(ledger: bool) -> Blinders:
    """The gateway's group operations over its cores when the job keeps a ledger, else here (no
    worker is started for a job that makes no sketch)."""
    return Blinders() if ledger else Blinders(1)


def gateway_selection(job: CrossDomainJob) -> Select | None:
    """How the gateway chooses cells under differential privacy with keys from the data: OpenDP's noisy
    threshold on each cell's matched people, drawn here (``executors.dp_sampler``, the measurement of
    ``policies.dp.cost``) before any cell is summed; on replay, the keys the job released."""
    order = [*job.plan.left.group_by, *job.plan.right.group_by]
    if job.keep is not None:
        names, rows = job.keep
        position = {name: i for i, name in enumerate(names)}
        # Compared by type (``policies.dp.keys``): a DATE key as a date, never as the text like it.
        wanted = {
            tuple(key_of(row[position[name]] if name in position else None) for name in order) for row in rows
        }

        def keep(cells: Sequence[tuple[tuple[object, ...], int]]) -> list[int]:
            return [i for i, (keys, _) in enumerate(cells) if tuple(key_of(k) for k in keys) in wanted]

        return keep
    if job.selection is None:
        return None
    scale, threshold = job.selection

    def select(cells: Sequence[tuple[tuple[object, ...], int]]) -> list[int]:
        counts = {str(i): int(units) for i, (_, units) in enumerate(cells)}
        return sorted(int(i) for i in draw(threshold_measurement(scale, threshold), counts))

    return select


def _ordered(table: pd.DataFrame, job: CrossDomainJob) -> pd.DataFrame:
    """The operator's ORDER BY and LIMIT, over cells of at least ``min_units`` people only."""
    if job.order_by:
        table = table.sort_values(
            [c for c, _ in job.order_by], ascending=[not d for _, d in job.order_by], kind="stable"
        )
    if job.limit is not None:
        table = table.head(job.limit)
    if job.columns:  # the operator's column order, then the hidden unit count
        table = table[[*job.columns, *(c for c in table.columns if c not in job.columns)]]
    return table.reset_index(drop=True)


def _ipc(table: pd.DataFrame) -> bytes:
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    return bytes(sink.getvalue().to_pybytes())


def _names(sql: str, parameter: str) -> bool:
    """Whether ``sql`` names ``$parameter`` itself (not a longer name it is the start of)."""
    return re.search(rf"\${re.escape(parameter)}(?!\w)", sql) is not None
