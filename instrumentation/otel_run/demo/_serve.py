"""Serving a WSGI application with gunicorn (threads, HTTP/1.1 keep-alive),
in the foreground, from Python: what the demo's services run on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def serve(
    app: Callable[..., Any] | str,
    binds: Sequence[str],
    *,
    threads: int = 16,
    workers: int = 1,
    name: str = "otel-run-demo",
) -> None:
    """Run ``app`` (a WSGI callable or a ``module:attribute`` string) until
    SIGTERM/SIGINT; ``binds`` are ``host:port`` strings."""
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", list(binds))
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("proc_name", name)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("timeout", 600)
            self.cfg.set("keepalive", 30)

        def load(self) -> Callable[..., Any]:
            if isinstance(app, str):
                import importlib

                module, _, attr = app.partition(":")
                return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
            return app

    _App().run()
