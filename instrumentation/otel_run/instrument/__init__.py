"""Instrumentations: the lazy loader (:mod:`._loader`, woken by the triggers in
:mod:`otel_run.bootstrap._imports`), the OpenTelemetry SDK set-up
(:mod:`._sdk`), and otel-run's own instrumentors (``subprocess``)."""
