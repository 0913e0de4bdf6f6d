"""Getting stored traces out: OTLP JSON (:mod:`._otlpjson`), Chrome trace JSON
for Perfetto (:mod:`._chrome`), and OTLP to a collector through the official
exporters (:mod:`._push`)."""
