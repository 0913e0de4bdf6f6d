"""Instrumentations: which library triggers what (:mod:`._registry`), the lazy
loader (:mod:`._loader`), the OpenTelemetry SDK set-up (:mod:`._sdk`), and
otel-run's own instrumentors (``subprocess``). Importing this package costs
nothing: the bootstrap imports it in every traced process."""
