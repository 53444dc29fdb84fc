"""Observability: Prometheus metrics, OpenTelemetry traces, structured logs with request ids, and the
liveness and readiness probes. ``wiring.install_observability`` is the one call the app factory makes."""
