"""``DockerInstrumentor``: containers started with the ``docker`` Python SDK.

``client.containers.run(...)`` and ``client.containers.create(...)`` +
``container.start()`` get what ``otel-run docker run`` gets
(:mod:`otel_run.run._container`): a container span under the current span,
``TRACEPARENT`` and the ``OTEL_*`` variables in the container's environment and,
under otel-run, the bootstrap mounts — so the Python inside joins the trace —
and, when the container is waited for (``run`` waits unless ``detach=True``),
start-up stages from the engine's own record (``inspect``: ``Created``,
``State.StartedAt``, ``State.FinishedAt``): ``container.create``,
``container.start``, ``container.workload``, ``container.teardown``.

    from otel_run.instrument.docker import DockerInstrumentor
    DockerInstrumentor().instrument()

Registered under the ``opentelemetry_instrumentor`` entry point ``docker``;
under otel-run it loads when ``docker.models.containers`` is imported. A call the
wrapper does not understand goes through untouched; tracing errors are logged
(``OTEL_RUN_DEBUG=1``), never raised.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_run import __version__, _env, _wire
from otel_run.bootstrap import _boot
from otel_run.instrument._containers import image_name, image_tag, injection, mount_enabled, parse_time

_PATCHED = (("ContainerCollection", "create"), ("Container", "wait"), ("Container", "remove"))


class DockerInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Container spans and trace-context injection for the docker SDK."""

    _originals: dict[tuple[str, str], Any] = {}  # noqa: RUF012 - one set of patches per process

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("docker >= 6",)

    def _instrument(self, **kwargs: Any) -> None:
        from docker.models import containers

        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        live: dict[str, _Live] = {}
        makers = {"create": _create, "wait": _wait, "remove": _remove}
        for owner_name, attr in _PATCHED:
            owner = getattr(containers, owner_name)
            original = owner.__dict__[attr]
            self._originals[(owner_name, attr)] = original
            wrapper = makers[attr](original, tracer, live)
            wrapper.__wrapped__ = original  # type: ignore[attr-defined]
            setattr(owner, attr, wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        from docker.models import containers

        for (owner_name, attr), original in self._originals.items():
            setattr(getattr(containers, owner_name), attr, original)
        self._originals.clear()


class _Live:
    """A container created through the SDK whose span is still open."""

    __slots__ = ("called_ns", "mounts", "span")

    def __init__(self, span: Any, called_ns: int, mounts: list[dict[str, Any]]) -> None:
        self.span = span
        self.called_ns = called_ns
        self.mounts = mounts


def _create(original: Any, tracer: Any, live: dict[str, _Live]) -> Any:
    def create(self: Any, image: Any, command: Any = None, **kwargs: Any) -> Any:
        try:
            span, mounts = _start_span(tracer, image, kwargs)
        except Exception as exc:  # never break the caller
            _wire.debug(f"docker: not tracing this container: {exc!r}")
            return original(self, image, command, **kwargs)
        called = time_ns()
        try:
            container = original(self, image, command, **kwargs)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
            span.end()
            raise
        try:
            span.set_attribute("container.id", container.id)
            name = getattr(container, "name", None)
            if name:
                span.set_attribute("container.name", name)
            live[container.id] = _Live(span, called, mounts)
        except Exception as exc:
            _wire.debug(f"docker: {exc!r}")
        return container

    return create


def _wait(original: Any, tracer: Any, live: dict[str, _Live]) -> Any:
    def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        entry = live.pop(getattr(self, "id", ""), None)
        if entry is not None:
            try:
                _finish(tracer, self, entry, result)
            except Exception as exc:
                _wire.debug(f"docker: container span not finished: {exc!r}")
        return result

    return wait


def _remove(original: Any, tracer: Any, live: dict[str, _Live]) -> Any:
    def remove(self: Any, *args: Any, **kwargs: Any) -> Any:
        entry = live.pop(getattr(self, "id", ""), None)
        if entry is not None:  # removed without waiting: end the span now
            entry.span.end()
        return original(self, *args, **kwargs)

    return remove


def _start_span(tracer: Any, image: Any, kwargs: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    image_ref = image if isinstance(image, str) else getattr(image, "tags", [""])[0] if image else ""
    attrs: dict[str, Any] = {"container.runtime.name": "docker", "container.image.name": image_name(image_ref)}
    tag = image_tag(image_ref)
    if tag:
        attrs["container.image.tags"] = [tag]
    span = tracer.start_span(f"container {image_ref}", attributes=attrs)
    ctx = span.get_span_context()
    environ = os.environ
    store = environ.get(_env.OTEL_RUN_STORE) if _boot.PROCESS is not None else None
    if store and not mount_enabled(environ, None):
        store = None
    user_env = _as_dict(kwargs.get("environment"))
    env, mounts = injection(
        environ, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), store, user_env.get(_env.PYTHONPATH)
    )
    for name, value in env.items():
        user_env[name] = environ.get(name, "") if value is None else value
    kwargs["environment"] = user_env
    volumes = kwargs.get("volumes")
    if mounts:
        if isinstance(volumes, dict):
            volumes = dict(volumes)
            for m in mounts:
                volumes[m["source"]] = {"bind": m["target"], "mode": "ro" if m["read_only"] else "rw"}
        else:
            volumes = list(volumes or [])
            volumes += [f"{m['source']}:{m['target']}" + (":ro" if m["read_only"] else "") for m in mounts]
        kwargs["volumes"] = volumes
    for i, m in enumerate(mounts):
        prefix = f"otel_run.container.mount.{i}"
        span.set_attribute(f"{prefix}.type", m["type"])
        span.set_attribute(f"{prefix}.source", m["source"])
        span.set_attribute(f"{prefix}.target", m["target"])
        span.set_attribute(f"{prefix}.read_only", bool(m["read_only"]))
    return span, mounts


def _finish(tracer: Any, container: Any, entry: _Live, result: Any) -> None:
    """Stages from ``inspect``, then end the container span."""
    returned = time_ns()
    state: dict[str, Any] = {}
    created = started = finished = None
    try:
        info = container.client.api.inspect_container(container.id)
        state = info.get("State") or {}
        created = parse_time(info.get("Created"))
        started = parse_time(state.get("StartedAt"))
        finished = parse_time(state.get("FinishedAt"))
    except Exception as exc:
        _wire.debug(f"docker: inspect failed: {exc!r}")
    span = entry.span
    code = result.get("StatusCode") if isinstance(result, dict) else None
    if isinstance(code, int):
        span.set_attribute("process.exit.code", code)
    parent = trace.set_span_in_context(span)
    stages = (
        ("container.create", entry.called_ns, created),
        ("container.start", created, started),
        ("container.workload", started, finished),
        ("container.teardown", finished, returned),
    )
    for name, begin, end in stages:
        if begin is None or end is None or end < begin:
            continue
        tracer.start_span(name, context=parent, start_time=begin).end(end_time=end)
    span.end(end_time=returned)


def _as_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, dict):
        return {str(k): str(v) for k, v in environment.items()}
    out: dict[str, str] = {}
    for item in environment or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out
