"""The embedded store: runs and their traces on the local disk, no server.

Layout of ``$OTEL_RUN_STORE``::

    index.jsonl               one JSON line when a run starts, one when it ends
    traces/<trace_id>.jsonl   OTLP JSON lines (Collector file-exporter format),
                              appended by every process of the trace
    pushed/<run_id>           marker: the run was sent to a collector
    outbox/<key>/<run_id>     runs handed to the background deliverer, not yet tried
    export.jsonl              one JSON line per attempt to send a run (the delivery record)

:class:`._store.Store` reads it; fragments of one span are merged by
:mod:`._merge` into the :mod:`._model` objects the analyses use.
"""
