"""The codeflash demo: a reference backend standing in for the private
codeflash-internal (:mod:`.backend`), an OpenAI-compatible replay server
standing in for the LLM provider (:mod:`.replay`), and ``otel-demo``
(:mod:`._cli`), which runs ``codeflash optimize`` on the fixture project under
otel-run against both. Needs the ``demo`` extra."""
