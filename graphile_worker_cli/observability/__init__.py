"""Observability plugins built on the hook registry: ``metrics`` (Prometheus, the
``metrics`` extra) and ``tracing`` (OpenTelemetry, the ``otel`` extra). Import the
submodule you need; nothing here is loaded unless asked for, so a worker without them
pays nothing. See docs/observability.md."""
