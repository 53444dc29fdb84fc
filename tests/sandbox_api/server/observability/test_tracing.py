"""Traces: a job's spans from the gateway through the runner to the executor, in the job's own trace."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from sandbox_api.server.observability.tracing import Tracing, job_context
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE
from tests.sandbox_api.server.observability.conftest import Observed


def spans_of(observed: Observed, trace_id: str) -> dict[str, ReadableSpan]:
    found = {}
    for span in observed.spans.get_finished_spans():
        assert span.context is not None
        if format(span.context.trace_id, "032x") == trace_id:
            found[span.name] = span
    return found


def test_a_job_is_one_trace_from_the_gateway_through_the_runner_to_the_executor(observed: Observed) -> None:
    api = observed.api
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    spans = spans_of(observed, job_id)  # the job's trace id is its id
    assert {"job.submitted", "job.run", "executor.run"} <= set(spans)
    root = trace.get_current_span(job_context(job_id)).get_span_context().span_id
    run, executed = spans["job.run"], spans["executor.run"]
    assert spans["job.submitted"].parent is not None
    assert spans["job.submitted"].parent.span_id == root
    assert run.parent is not None
    assert run.parent.span_id == root
    assert run.context is not None
    assert executed.parent is not None
    assert executed.parent.span_id == run.context.span_id  # the executor continues the runner's span
    assert executed.attributes is not None
    assert executed.attributes["sandbox.executor"] == "local"
    assert float(str(executed.attributes["sandbox.timing.query_s"])) >= 0
    # The submitting request has its own trace; it names the job, and the job's first span links to it.
    request = next(
        s
        for s in observed.spans.get_finished_spans()
        if s.name == "POST /v1/jobs" and (s.attributes or {}).get("sandbox.job_id") == job_id
    )
    assert request.context is not None
    assert [link.context.span_id for link in spans["job.submitted"].links] == [request.context.span_id]


def test_a_callers_traceparent_is_continued_by_the_request_span(observed: Observed) -> None:
    api = observed.api
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {**api.h("alice"), "traceparent": f"00-{trace_id}-{parent}-01"}
    assert api.client.get("/v1/whoami", headers=headers).status_code == 200
    (span,) = [s for s in spans_of(observed, trace_id).values() if s.name == "GET /v1/whoami"]
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent
    assert (span.attributes or {})["http.response.status_code"] == 200


def test_tracing_is_off_by_default_and_then_records_nothing() -> None:
    tracing = Tracing.create(Settings())
    assert tracing.provider is None
    with tracing.tracer.start_as_current_span("nothing") as span:
        assert not span.get_span_context().is_valid


def test_the_console_exporter_writes_one_json_document_per_span() -> None:
    out = io.StringIO()
    with redirect_stdout(out):  # the exporter writes to the standard output it finds when created
        tracing = Tracing.create(Settings(trace_exporter="console"))
        with tracing.tracer.start_as_current_span("console-check"):
            pass
        tracing.close()  # flushes the batch
    document = json.loads(out.getvalue())
    assert document["name"] == "console-check"
    assert document["resource"]["attributes"]["service.name"] == "data-sandbox"


def test_a_jobs_sampling_decision_is_the_same_on_every_gateway() -> None:
    job_id = "9f2c41aa" * 4
    never = trace.get_current_span(job_context(job_id, sample_ratio=0.0)).get_span_context()
    always = trace.get_current_span(job_context(job_id, sample_ratio=1.0)).get_span_context()
    assert not never.trace_flags.sampled
    assert always.trace_flags.sampled
    again = trace.get_current_span(job_context(job_id)).get_span_context()
    assert (again.trace_id, again.span_id) == (always.trace_id, always.span_id)
