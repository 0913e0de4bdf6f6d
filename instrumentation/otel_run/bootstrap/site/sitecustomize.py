"""otel-run's hook into every Python process it traces.

otel-run puts this directory (which holds nothing else) first on ``PYTHONPATH``;
Python's ``site`` imports it at start-up. It makes a single call and never lets
an error reach its host program.
"""


def _otel_run_start() -> None:
    import os
    import sys

    try:
        site_dir = os.path.dirname(os.path.abspath(__file__))
        try:
            from otel_run.bootstrap._boot import start
        except ImportError:
            # A Python outside otel-run's environment (another virtualenv, a
            # container): import the package from where this file lives, then
            # take that path away again so the program's own imports are untouched.
            root = os.path.dirname(os.path.dirname(os.path.dirname(site_dir)))
            sys.path.insert(0, root)
            try:
                from otel_run.bootstrap._boot import start
            finally:
                sys.path.remove(root)
        start(os.environ, site_dir)
    except BaseException as exc:  # never crash the host, whatever happens
        if os.environ.get("OTEL_RUN_DEBUG") == "1":
            sys.stderr.write(f"otel-run: bootstrap disabled: {exc!r}\n")


_otel_run_start()
