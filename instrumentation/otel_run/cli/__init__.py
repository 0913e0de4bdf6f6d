"""Command lines other than ``otel-run`` itself: ``otel-trace`` (:mod:`._trace`)."""
