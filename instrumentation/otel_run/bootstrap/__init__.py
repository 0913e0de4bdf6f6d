"""What a traced Python process loads at start-up: ``site/sitecustomize.py`` (on
``PYTHONPATH``), :mod:`._boot`, :mod:`._redact` and the trigger table
:mod:`._registry`. Standard library only, and as
little of it as possible: everything here is paid by every process's start-up."""
