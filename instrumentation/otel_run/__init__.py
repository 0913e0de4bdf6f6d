"""otel-run: any command becomes one OpenTelemetry trace across its whole process tree.

The public API, for services that want their own spans or are not started by
``otel-run`` (codeflash-internal adopts each in one line)::

    import otel_run
    otel_run.setup("codeflash-aiservice")          # once, in wsgi.py / asgi.py
    with otel_run.stage("prompt.assemble"):        # a span around one step
        ...

The bootstrap of every traced process imports this package, so nothing is
imported here until an attribute is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "setup", "stage"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_run._api import setup, stage


def __getattr__(name: str) -> object:
    if name in ("setup", "stage"):
        from otel_run import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'otel_run' has no attribute {name!r}")
