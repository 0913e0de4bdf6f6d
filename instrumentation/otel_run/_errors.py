"""The one error type of otel-run; the command lines turn it into a one-line
message and an exit status."""

from __future__ import annotations


class OtelRunError(Exception):
    """A failure the user can act on; ``str()`` is the whole message."""

    exit_code = 1


class UsageError(OtelRunError):
    """Bad command-line input."""

    exit_code = 2
