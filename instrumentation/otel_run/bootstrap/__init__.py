"""What a traced Python process loads at start-up: ``site/sitecustomize.py`` (on
``PYTHONPATH``), :mod:`._boot` and :mod:`._redact`. Standard library only, and as
little of it as possible: everything here is paid by every process's start-up."""
