"""``otel-run docker run …`` / ``otel-run podman run …``: the container in the trace.

When the command is a ``run`` of the docker or podman CLI, otel-run

* adds to the ``run`` arguments the trace context (``-e TRACEPARENT``, whose
  parent is the container's span), the host's ``OTEL_*`` variables, a
  ``--cidfile`` to learn the container id, and — unless ``--no-container-mount``
  or ``OTEL_RUN_CONTAINER_MOUNT=false`` — read-only bind mounts of otel-run's
  bootstrap and of the OpenTelemetry libraries, plus the store (read-write),
  so an unmodified image's Python is traced into the same trace and store;
* reads the engine's events — podman's with a query after the run
  (``podman events --stream=false``), the docker CLI's by following its stream
  while the command runs — and afterwards writes the container span —
  ``container.id``, ``container.name``, ``container.image.name``,
  ``container.runtime.name`` and the mounts — with its start-up stages as
  children, from the engine's own timestamps (and an ``image.pull`` event on
  the span where the engine logged one): ``container.create`` (the CLI
  asking → the engine created it), ``container.start`` (created → the runtime
  started the process), ``container.boot`` (started → the first span inside: the
  interpreter's start-up and imports), ``container.workload``, and
  ``container.teardown`` (the process died → ``docker run`` returned).

Everything here is best effort: a failure is a debug line, never a different
exit status, and the command's own arguments keep their meaning.
"""

from __future__ import annotations

import os
import tempfile

from otel_run import _env, _wire
from otel_run.instrument._containers import image_name, image_tag, injection, parse_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from typing import Any

ENGINES = ("docker", "podman")
_VALUED_GLOBALS = {"-H", "--host", "-c", "--context", "--config", "--log-level", "-l", "--url", "--connection"}
_EVENTS_GRACE_S = 0.3
"""How long to wait for a streamed ``die`` event before asking the listener to stop (and flush)."""


class ContainerRun:
    """One ``docker run`` / ``podman run`` command, as otel-run changes and follows it."""

    def __init__(self, argv: Sequence[str], run_at: int) -> None:
        self.argv = list(argv)
        self.engine = os.path.basename(argv[0])
        self.run_at = run_at
        """Index of the ``run`` subcommand in ``argv``."""
        self.span_id = _wire.new_span_id()
        self.cidfile: str | None = None
        self._own_cidfile = False
        self.image = _image(argv, run_at)
        self.mounts: list[dict[str, Any]] = _mounts(argv, run_at)
        self._events: subprocess.Popen[bytes] | None = None
        self._since = 0
        self._env: dict[str, str] = {}
        self.trace_id = ""

    # ------------------------------------------------------------------ before
    def command(self, environ: Mapping[str, str], trace_id: str, store: str, mount: bool) -> list[str]:
        """The command to run instead: ``run`` with otel-run's options added."""
        self.trace_id = trace_id
        extra: list[str] = []
        given = _option_value(self.argv, self.run_at, ("--cidfile",))
        if given:
            self.cidfile = given
        else:
            fd, self.cidfile = tempfile.mkstemp(prefix="otel-run-cid-")
            os.close(fd)
            os.unlink(self.cidfile)  # the engine refuses to overwrite it
            self._own_cidfile = True
            extra += ["--cidfile", self.cidfile]
        user_path = _env_value(self.argv, self.run_at, _env.PYTHONPATH)
        env, mounts = injection(environ, trace_id, self.span_id, store if mount else None, user_path)
        for name, value in env.items():
            extra += ["-e", name if value is None else f"{name}={value}"]
        for m in mounts:
            extra += ["-v", f"{m['source']}:{m['target']}" + (":ro" if m["read_only"] else "")]
        self.mounts += mounts
        argv = self.argv
        out = [*argv[: self.run_at + 1], *extra, *argv[self.run_at + 1 :]]
        if mount and _env_value(argv, self.run_at, _env.PYTHONPATH) is not None:
            out = _drop_env(out, self.run_at + 1 + len(extra), _env.PYTHONPATH)
        return out

    def listen(self, env: Mapping[str, str], since_ns: int) -> None:
        """Follow the engine's container events from now on (in a child process).
        podman keeps its events and answers a query afterwards (``--stream=false``);
        the docker CLI can only follow them."""
        import subprocess

        self._since = since_ns // 1_000_000_000
        self._env = {k: v for k, v in env.items() if k not in (_env.OTEL_RUN_PROCESS, _env.PYTHONPATH)}
        if self.engine == "podman":
            return
        command = [*self.argv[: self.run_at], "events", "--since", str(self._since)]
        command += ["--filter", "type=container", "--filter", "type=image", "--format", "{{json .}}"]
        try:
            self._events = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None if env.get(_env.OTEL_RUN_DEBUG) == "1" else subprocess.DEVNULL,
                env=self._env,
            )
        except OSError as exc:
            _wire.debug(f"container: cannot follow {self.engine} events: {exc!r}")

    # ------------------------------------------------------------------- after
    def spans(self, parent_id: str, cli_start_ns: int, cli_end_ns: int, inside_ready_ns: int | None) -> list[str]:
        """The container span and its stages (OTLP JSON spans), once the CLI returned.

        ``inside_ready_ns``: when the first traced Python inside was ready to
        run its program (its ``python.started`` event), if there was one.
        """
        cid = self._container_id()
        events = self._collect(cid)
        if not cid:
            _wire.debug("container: no container id (the engine did not create one?)")
            return []
        times = {e["action"]: e["time_ns"] for e in events if e["id"] == cid}
        name = next((e["name"] for e in events if e["id"] == cid and e["name"]), "")
        created = times.get("create")
        running = times.get("init", times.get("start"))  # podman: init = the runtime started the process
        died = times.get("died", times.get("die"))
        attrs: dict[str, Any] = {
            "container.id": cid,
            "container.runtime.name": self.engine,
            "container.image.name": image_name(self.image),
        }
        tag = image_tag(self.image)
        if tag:
            attrs["container.image.tags"] = [tag]
        if name:
            attrs["container.name"] = name
        for i, m in enumerate(self.mounts):
            prefix = f"otel_run.container.mount.{i}"
            attrs[f"{prefix}.type"] = m["type"]
            attrs[f"{prefix}.source"] = m["source"]
            attrs[f"{prefix}.target"] = m["target"]
            attrs[f"{prefix}.read_only"] = bool(m["read_only"])
            if m.get("otel_run"):
                attrs[f"{prefix}.otel_run"] = True
        if not events:
            attrs["otel_run.container.events"] = "unavailable"
        span_name = f"container {self.image or cid[:12]}"
        # podman logs a `pull` when it starts resolving the image, real pull or not, and nothing when it ends:
        # an event on the span, not a stage with a duration
        pulls = [
            ("image.pull", e["time_ns"], {"container.image.name": e["name"] or e["id"]})
            for e in self._pulls(events, cli_start_ns, created)
        ]
        out = [
            _wire.span_json(
                self.trace_id, self.span_id, parent_id, span_name, cli_start_ns, cli_end_ns, attrs, events=pulls
            )
        ]
        stages: list[tuple[str, int | None, int | None]] = [
            ("container.create", cli_start_ns, created),
            ("container.start", created, running),
        ]
        if (
            inside_ready_ns is not None
            and running is not None
            and died is not None
            and running <= inside_ready_ns <= died
        ):
            stages += [("container.boot", running, inside_ready_ns), ("container.workload", inside_ready_ns, died)]
        else:
            stages += [("container.workload", running, died)]
        stages += [("container.teardown", died, cli_end_ns)]
        for stage, begin, end in stages:
            if begin is None or end is None or end < begin:
                continue
            out.append(_wire.span_json(self.trace_id, _wire.new_span_id(), self.span_id, stage, begin, end, {}))
        return out

    def _pulls(self, events: list[dict[str, Any]], begin: int, created: int | None) -> list[dict[str, Any]]:
        """The engine's pull events for this run's image, before its container was created."""
        last = created if created is not None else 2**63
        ref, short = self.image, image_name(self.image).rsplit("/", 1)[-1]
        return [
            e
            for e in events
            if e["type"] == "image"
            and e["action"] == "pull"
            and begin <= e["time_ns"] <= last
            and ((e["name"] or e["id"]) == ref or image_name(e["name"] or e["id"]).endswith(short))
        ]

    def _query(self, cid: str, json: Any) -> list[dict[str, Any]]:
        if not cid or not self._since:
            return []
        command = [*self.argv[: self.run_at], "events", "--stream=false", "--since", str(self._since)]
        command += ["--format", "json"]  # everything since the run began: its container's events and pulls
        out = _run_query(command, self._env)
        events = [e for e in (_event(line, json) for line in out.splitlines()) if e is not None]
        events = [e for e in events if e["id"] == cid or e["type"] == "image"]
        _wire.debug(f"container: {len(events)} podman events")
        return events

    def _container_id(self) -> str:
        try:
            with open(self.cidfile or "", encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return ""
        finally:
            if self._own_cidfile and self.cidfile:
                try:
                    os.unlink(self.cidfile)
                except OSError:
                    pass

    def _collect(self, cid: str) -> list[dict[str, Any]]:
        """The container's events: podman's from a query, docker's from the stream
        (waiting up to a grace period for the container's death)."""
        import json

        if self.engine == "podman":
            return self._query(cid, json)
        proc = self._events
        if proc is None or proc.stdout is None:
            return []
        import select
        import time

        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + _EVENTS_GRACE_S
        buffer = b""
        fd = proc.stdout.fileno()
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buffer += chunk
                if cid.encode() in buffer and (b'"die' in buffer or b'"died' in buffer):
                    break
            proc.send_signal(2)  # stop; anything buffered is flushed
            try:
                rest, _ = proc.communicate(timeout=2)
                buffer += rest or b""
            except Exception:
                pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _wire.debug(f"container: {len(buffer)} bytes of {self.engine} events")
        for line in buffer.split(b"\n"):
            event = _event(line, json)
            if event is not None:
                events.append(event)
        return events


def _run_query(command: list[str], env: Mapping[str, str]) -> bytes:
    import subprocess

    try:
        return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        _wire.debug(f"container: {command[0]} events failed: {exc!r}")
        return b""


def detect(argv: Sequence[str]) -> ContainerRun | None:
    """A ``ContainerRun`` when ``argv`` is ``docker|podman [global options] run …``."""
    if not argv or os.path.basename(argv[0]) not in ENGINES:
        return None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "run":
            return ContainerRun(argv, i)
        if arg in ("container",) and i + 1 < len(argv) and argv[i + 1] == "run":
            return ContainerRun(argv, i + 1)
        if not arg.startswith("-"):
            return None  # another subcommand
        i += 2 if arg in _VALUED_GLOBALS else 1
    return None


# ------------------------------------------------------------------ private

# ``run`` options that take a value (so the image is the first other word)
_RUN_VALUED = frozenset(
    [
        "-a",
        "--attach",
        "--add-host",
        "--annotation",
        "--blkio-weight",
        "--cap-add",
        "--cap-drop",
        "--cgroup-parent",
        "--cgroupns",
        "--cidfile",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-shares",
        "-c",
        "--cpus",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--device",
        "--dns",
        "--dns-option",
        "--dns-search",
        "--domainname",
        "--entrypoint",
        "-e",
        "--env",
        "--env-file",
        "--expose",
        "--gpus",
        "--group-add",
        "--health-cmd",
        "--health-interval",
        "--health-retries",
        "--health-start-period",
        "--health-timeout",
        "-h",
        "--hostname",
        "--ip",
        "--ip6",
        "--ipc",
        "--isolation",
        "--kernel-memory",
        "-l",
        "--label",
        "--label-file",
        "--link",
        "--log-driver",
        "--log-opt",
        "--mac-address",
        "-m",
        "--memory",
        "--memory-reservation",
        "--memory-swap",
        "--memory-swappiness",
        "--mount",
        "--name",
        "--network",
        "--net",
        "--network-alias",
        "--oom-score-adj",
        "--pid",
        "--pids-limit",
        "--platform",
        "-p",
        "--publish",
        "--pull",
        "--restart",
        "--runtime",
        "--security-opt",
        "--shm-size",
        "--stop-signal",
        "--stop-timeout",
        "--storage-opt",
        "--sysctl",
        "--tmpfs",
        "--ulimit",
        "-u",
        "--user",
        "--userns",
        "--uts",
        "-v",
        "--volume",
        "--volume-driver",
        "--volumes-from",
        "-w",
        "--workdir",
        "--arch",
        "--os",
        "--variant",
        "--pod",
        "--uidmap",
        "--gidmap",
        "--log-level",
        "--sdnotify",
        "--secret",
        "--timeout",
        "--tz",
        "--umask",
        "--preserve-fds",
        "--requires",
        "--rootfs",
        "--hooks-dir",
    ]
)


def _image_index(argv: Sequence[str], run_at: int) -> int | None:
    i = run_at + 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1 if i + 1 < len(argv) else None
        if not arg.startswith("-") or arg == "-":
            return i
        i += 2 if arg in _RUN_VALUED else 1
    return None


def _image(argv: Sequence[str], run_at: int) -> str:
    i = _image_index(argv, run_at)
    return argv[i] if i is not None else ""


def _options(argv: Sequence[str], run_at: int) -> list[tuple[str, str | None]]:
    """``(option, value)`` of the run options before the image (``--opt=value`` split)."""
    end = _image_index(argv, run_at) or len(argv)
    out: list[tuple[str, str | None]] = []
    i = run_at + 1
    while i < end:
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if eq and name.startswith("--"):
            out.append((name, value))
            i += 1
        elif arg in _RUN_VALUED and i + 1 < end:
            out.append((arg, argv[i + 1]))
            i += 2
        else:
            out.append((arg, None))
            i += 1
    return out


def _option_value(argv: Sequence[str], run_at: int, names: tuple[str, ...]) -> str | None:
    for name, value in _options(argv, run_at):
        if name in names:
            return value
    return None


def _env_value(argv: Sequence[str], run_at: int, key: str) -> str | None:
    found = None
    for name, value in _options(argv, run_at):
        if name in ("-e", "--env") and value is not None and value.partition("=")[0] == key:
            found = value.partition("=")[2]
    return found


def _drop_env(argv: list[str], start: int, key: str) -> list[str]:
    """``argv`` without the user's ``-e KEY=…`` after ``start`` (merged into ours)."""
    out = argv[:start]
    i = start
    while i < len(argv):
        arg = argv[i]
        if arg in ("-e", "--env") and i + 1 < len(argv) and argv[i + 1].partition("=")[0] == key:
            i += 2
            continue
        if arg.startswith("--env=") and arg[6:].partition("=")[0] == key:
            i += 1
            continue
        out.append(arg)
        i += 1
    return out


def _mounts(argv: Sequence[str], run_at: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in _options(argv, run_at):
        if value is None:
            continue
        if name in ("-v", "--volume"):
            parts = value.split(":")
            if len(parts) >= 2:
                options = parts[2].split(",") if len(parts) > 2 else []
                kind = "bind" if parts[0].startswith(("/", ".")) else "volume"
                out.append({"type": kind, "source": parts[0], "target": parts[1], "read_only": "ro" in options})
            else:
                out.append({"type": "volume", "source": "", "target": parts[0], "read_only": False})
        elif name == "--mount":
            fields = dict(p.partition("=")[::2] for p in value.split(","))
            out.append(
                {
                    "type": fields.get("type", "volume"),
                    "source": fields.get("source", fields.get("src", "")),
                    "target": fields.get("target", fields.get("destination", fields.get("dst", ""))),
                    "read_only": "readonly" in fields or fields.get("ro") in ("", "true", "1"),
                }
            )
        elif name == "--tmpfs":
            out.append({"type": "tmpfs", "source": "", "target": value.split(":")[0], "read_only": False})
    return out


def _event(line: bytes, json: Any) -> dict[str, Any] | None:
    """One engine event, from docker's or podman's JSON, as ``{id, action, name, time_ns}``."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    actor = raw.get("Actor") or {}
    cid = raw.get("id") or raw.get("ID") or actor.get("ID") or ""
    action = raw.get("Action") or raw.get("status") or raw.get("Status") or ""
    name = (actor.get("Attributes") or {}).get("name") or raw.get("Name") or ""
    time_ns = raw.get("timeNano")
    if time_ns is None:
        time_ns = parse_time(raw.get("Time") or raw.get("time"))
    kind = str(raw.get("Type") or raw.get("type") or "container").lower()
    cid = cid or name  # podman's pull events name the image and have no id
    if not cid or not action or time_ns is None:
        return None
    return {"id": cid, "action": str(action).lower(), "name": name, "time_ns": int(time_ns), "type": kind}
