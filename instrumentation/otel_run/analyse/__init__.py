"""Analyses over stored traces: the tree, self time, the critical path and
per-process totals (:mod:`._tree`)."""
