"""What a traced Python process loads at start-up: ``site/sitecustomize.py`` (on
``PYTHONPATH``), :mod:`._boot` (the process span and the hooks on how it ends),
:mod:`._imports` (the hook on imports and the registry of what it triggers) and
:mod:`._children` (the hooks on exec, fork and wait), over the wire format
:mod:`otel_run._wire`. Standard library only, and as little of it as possible:
everything here is paid by every process's start-up, so these modules (and the
ones below them: ``_wire``, ``_redact``, ``_env``, the package root) quote their
annotations instead of importing ``__future__``."""
