"""What a container gets to join the trace, for both ways of starting one:
``otel-run docker|podman run`` (:mod:`otel_run.run._container`) and the docker
SDK (:mod:`otel_run.instrument.docker`): the trace context and the host's
``OTEL_*`` variables, and bind mounts of otel-run's bootstrap, the OpenTelemetry
libraries and the store; plus the image-name and engine-timestamp parsing both
need."""

from __future__ import annotations

import os

from otel_run import _env, _wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

IN_LIB = "/otel-run/lib"
IN_PYLIB = "/otel-run/pylib"
IN_STORE = "/otel-run/store"
IN_PYSPY = "/otel-run/bin/py-spy"
_SKIP_ENV = (_env.OTEL_RUN_PROCESS, _env.OTEL_RUN_STORE, _env.OTEL_RUN_PYLIB, _env.OTEL_RUN_PYSPY)


def injection(
    environ: Mapping[str, str], trace_id: str, span_id: str, store: str | None, user_pythonpath: str | None = None
) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
    """What a container gets: environment variables (None: the value passes from
    the caller's environment) and bind mounts. With ``store`` (otel-run's, when
    mounting is on): the bootstrap, the OpenTelemetry libraries and the store."""
    env: dict[str, str | None] = {_env.TRACEPARENT: _wire.traceparent(trace_id, span_id)}
    for name in sorted(environ):
        if name.startswith("OTEL_") and name not in _SKIP_ENV:
            env[name] = None
    mounts: list[dict[str, Any]] = []
    if store:
        lib = os.path.dirname(os.path.abspath(_wire.__file__))  # .../otel_run
        site = f"{IN_LIB}/otel_run/bootstrap/site"
        env[_env.OTEL_RUN_STORE] = IN_STORE
        env[_env.PYTHONPATH] = site + (f":{user_pythonpath}" if user_pythonpath else "")
        mounts += [
            {"type": "bind", "source": lib, "target": f"{IN_LIB}/otel_run", "read_only": True, "otel_run": True},
            {"type": "bind", "source": store, "target": IN_STORE, "read_only": False, "otel_run": True},
        ]
        pylib = environ.get(_env.OTEL_RUN_PYLIB)
        if pylib:
            env[_env.OTEL_RUN_PYLIB] = IN_PYLIB
            mounts.append({"type": "bind", "source": pylib, "target": IN_PYLIB, "read_only": True, "otel_run": True})
        pyspy = environ.get(_env.OTEL_RUN_PYSPY)  # --profile cpu: the sampler runs inside the container
        if pyspy and os.path.isfile(pyspy):
            env[_env.OTEL_RUN_PYSPY] = IN_PYSPY
            env[_env.OTEL_RUN_IN_CONTAINER] = "1"
            mounts.append({"type": "bind", "source": pyspy, "target": IN_PYSPY, "read_only": True, "otel_run": True})
    return env, mounts


def mount_enabled(environ: Mapping[str, str], flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return environ.get(_env.OTEL_RUN_CONTAINER_MOUNT, "true").strip().lower() not in ("false", "0", "no")


def image_name(image: str) -> str:
    """``registry/name`` of ``registry:5000/name:tag@digest``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def image_tag(image: str) -> str | None:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def parse_time(value: Any) -> int | None:
    if isinstance(value, (int, float)):
        return int(value * 1e9) if value < 1e12 else int(value)
    if not isinstance(value, str):
        return None
    from datetime import datetime

    text = value.strip().replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # nanoseconds: datetime keeps microseconds only
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        digits, tz = rest[:n], rest[n:]
        frac = int((digits + "000000000")[:9])
        try:
            whole = datetime.fromisoformat(main + tz)
        except ValueError:
            return None
        return int(whole.timestamp()) * 1_000_000_000 + frac
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1e9)
    except ValueError:
        return None
