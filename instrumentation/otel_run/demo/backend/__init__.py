"""The reference backend: a **stand-in for codeflash-internal**, the private
service behind codeflash's ``/ai/*`` (port 8000) and ``/cfapi/*`` (port 3001)
endpoints, so the whole vertical runs offline and in CI.

It is built the way the real service is: Django + Django Ninja, and for every
AI endpoint the same pipeline — parse the request, assemble a prompt, call an
LLM through the official ``openai`` SDK, parse the completion, store the
exchange with the Django ORM (SQLite by default), respond. The LLM is the replay
server (:mod:`otel_run.demo.replay`). It speaks codeflash 0.20.6's protocol
(request and response shapes read from ``codeflash/api/aiservice.py`` and
``cfapi.py``) and records any request it does not understand, so a contract
test can tell when the pinned codeflash drifts from it.

Instrumented as codeflash-internal would be, with one call in ``wsgi.py``
(:func:`otel_run.setup`) and ``otel_run.stage(...)`` around each step.
"""
