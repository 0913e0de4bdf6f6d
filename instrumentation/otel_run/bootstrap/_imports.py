"""The hook on imports, and the registry of what it triggers.

The bootstrap installs a post-import finder watching one trigger module per
instrumentation; the first time a program imports it,
:func:`otel_run.instrument._loader.load` loads the instrumentation — or, for
the HTTP clients and OpenAI, arms it to load at the first call
(:data:`FIRST_USE`). Names are the ``opentelemetry_instrumentor`` entry-point
names, so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switches them off as it
does for ``opentelemetry-instrument``.

The registry is a static table rather than an entry-point scan: scanning the
installed distributions costs tens of milliseconds per process, this costs
nothing. It names the instrumentations' modules and never imports them: the
bootstrap sits below the instrumentations and knows them only by name.

Standard library only; loaded at start-up by every traced process.
"""

import sys

from otel_run._wire import debug

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

# ------------------------------------------------------------ the registry

INSTRUMENTATIONS: "dict[str, tuple[str, str]]" = {
    # name: (module whose import triggers it, "module:attribute" that instruments)
    "subprocess": ("subprocess", "otel_run.instrument._subprocess:install"),
    "urllib3": ("urllib3", "opentelemetry.instrumentation.urllib3:URLLib3Instrumentor"),
    "requests": ("requests", "opentelemetry.instrumentation.requests:RequestsInstrumentor"),
    "httpx": ("httpx", "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor"),
    "openai": ("openai", "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor"),
    # Django reads its settings when instrumented: armed on the handler module,
    # applied just before the first handler loads its middleware (see _loader)
    "django": ("django.core.handlers.base", "opentelemetry.instrumentation.django:DjangoInstrumentor"),
    "sqlite3": ("sqlite3", "opentelemetry.instrumentation.sqlite3:SQLite3Instrumentor"),
    "codeflash": ("codeflash.optimization.optimizer", "otel_run.instrument.codeflash:CodeflashInstrumentor"),
    "docker": ("docker.models.containers", "otel_run.instrument.docker:DockerInstrumentor"),
}
"""Instrumentations loaded lazily. ``subprocess`` is otel-run's own light
instrumentation (it needs no SDK); ``codeflash`` and ``docker`` are otel-run's; the others are
the official OpenTelemetry instrumentations, loaded with the SDK."""

FIRST_USE: "dict[str, tuple[tuple[str, str, str], ...]]" = {
    # name: the (module, class, method) calls that load it, instead of the import
    "urllib3": (("urllib3.connectionpool", "HTTPConnectionPool", "urlopen"),),
    "requests": (("requests.sessions", "Session", "send"),),
    "httpx": (("httpx", "HTTPTransport", "handle_request"), ("httpx", "AsyncHTTPTransport", "handle_async_request")),
    "openai": (
        ("openai.resources.chat.completions", "Completions", "create"),
        ("openai.resources.chat.completions", "AsyncCompletions", "create"),
        ("openai.resources.embeddings", "Embeddings", "create"),
        ("openai.resources.embeddings", "AsyncEmbeddings", "create"),
    ),
}
"""Instrumentations loaded at the first *call* into their library rather than at
its import: a process that imports ``requests`` and never sends a request (every
pytest run under codeflash: its plugin imports it) pays nothing for the SDK.
These are the methods the official instrumentations wrap; until the first call
each holds a stub that loads the instrumentation and passes the call on (see
:func:`otel_run.instrument._loader.arm`)."""

OPT_IN = frozenset({"sqlite3"})
"""Off unless named in ``OTEL_RUN_INSTRUMENTATIONS`` or ``otel_run.setup(instrumentations=...)``:
a span per query costs too much in programs that did not ask (codeflash's own
tracer writes to SQLite on every call it records)."""

LOADER = "otel_run.instrument._loader"
"""The module that loads an instrumentation (``arm(name)``, ``load(name)``),
named, not imported, as ``opentelemetry-instrument`` knows its entry points."""


SDK_TRIGGER = "opentelemetry.trace"
"""A program that uses the OpenTelemetry API itself gets the SDK configured."""


def triggers(
    disabled: "Iterable[str]" = (), enabled: "Iterable[str]" = (), only: "Iterable[str] | None" = None
) -> "dict[str, Callable[[Any], None]]":
    """Post-import callbacks by module name: every default instrumentation and
    the ``enabled`` opt-in ones, without the ``disabled`` ones (or just ``only``)."""
    skip, on = set(disabled), set(enabled)
    names = set(only) if only is not None else set(INSTRUMENTATIONS)
    out: dict[str, Callable[[Any], None]] = {}
    for name, (module, _target) in INSTRUMENTATIONS.items():
        if name in names and name not in skip and (name not in OPT_IN or name in on):
            out[module] = _callback(name)
    if only is None:
        out[SDK_TRIGGER] = _callback("")
    return out


def _callback(name: str) -> "Callable[[Any], None]":
    action = "arm" if name in FIRST_USE else "load"

    def fire(_module: "Any") -> None:
        getattr(__import__(LOADER, fromlist=[action]), action)(name)

    return fire


# ---------------------------------------------------------- the import hook

FINDER: "PostImportFinder | None" = None
"""The post-import hook, once installed."""


def install(disabled: "Iterable[str]", enabled: "Iterable[str]") -> None:
    """Install the hook for every instrumentation not ``disabled`` (and the
    opt-in ones ``enabled``); fire at once for modules imported before us (by
    a ``.pth`` file)."""
    global FINDER
    finder = FINDER = PostImportFinder(triggers(disabled, enabled))
    sys.meta_path.insert(0, finder)
    for name in list(finder.triggers):
        module = sys.modules.get(name)
        if module is not None:
            finder.fire(name, module)


def enable_instrumentation(name: str) -> None:
    """Switch on an instrumentation (one that is opt-in) in this process: now if
    its library is imported already, else when it is."""
    if FINDER is None:
        return
    for module, callback in triggers(enabled={name}, only={name}).items():
        when_imported(module, callback)


def when_imported(module: str, callback: "Callable[[Any], None]") -> bool:
    """Run ``callback(module)`` right after ``module`` is first imported, or now
    if it is imported already. False when there is no import hook (a process
    otel-run does not trace): the caller decides what to do then."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        callback(loaded)
        return True
    finder = FINDER
    if finder is None:
        return False
    previous = finder.triggers.get(module)
    if previous is None:
        finder.triggers[module] = callback
    else:

        def both(mod: "Any") -> None:
            try:
                previous(mod)
            finally:
                callback(mod)

        finder.triggers[module] = both
    return True


def ensure_finder() -> "PostImportFinder":
    """The post-import hook, installed now (with nothing to watch) if otel-run
    did not install it: lets an instrumentor loaded by stock
    ``opentelemetry-instrument`` wait for its library instead of importing it."""
    global FINDER
    if FINDER is None:
        FINDER = PostImportFinder({})
        sys.meta_path.insert(0, FINDER)
    return FINDER


class PostImportFinder:
    """Runs a callback right after a watched module finished executing.

    ``wrapt.importer`` does the same; importing wrapt costs several
    milliseconds, this is forty lines.
    """

    def __init__(self, triggers: "Mapping[str, Callable[[Any], None]]") -> None:
        self.triggers = dict(triggers)
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: "Any" = None, target: "Any" = None) -> "Any":
        if fullname not in self.triggers or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _HookLoader(loader, self, fullname)  # type: ignore[assignment]
        return spec

    def fire(self, fullname: str, module: "Any") -> None:
        callback = self.triggers.pop(fullname, None)
        if callback is None:
            return
        try:
            callback(module)
        except Exception as exc:
            debug(f"instrumenting {fullname} failed: {exc!r}")


class _HookLoader:
    def __init__(self, loader: "Any", finder: "PostImportFinder", fullname: str) -> None:
        self._loader = loader
        self._finder = finder
        self._fullname = fullname

    def create_module(self, spec: "Any") -> "Any":
        return self._loader.create_module(spec)

    def exec_module(self, module: "Any") -> None:
        # The module shows its own loader, not this wrapper.
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        self._finder.fire(self._fullname, sys.modules.get(self._fullname, module))

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._loader, name)
