"""``otel-run``: run a command as one trace (:mod:`._cli`), supervise it
transparently (:mod:`._supervise`), and record the run (:mod:`._record`)."""
