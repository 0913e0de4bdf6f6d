"""Every environment variable otel-run reads or sets, named and documented here.

This module is the single registry: code elsewhere imports the *names* from here
and reads the value where it is used, from an ``environ`` mapping passed in (so
tests hand in a plain dict). It holds constants only and imports nothing, because
the in-process bootstrap of every traced Python process imports it.

Standard OpenTelemetry variables (honoured as the specification says):

``TRACEPARENT`` / ``TRACESTATE`` / ``BAGGAGE``
    W3C context carried through the environment ("environment variables as
    context propagation carriers"). otel-run reads them as the parent of its root
    span and sets them for every child so that the child's spans join the trace.
``OTEL_SERVICE_NAME``
    ``service.name`` of a process; wins over ``OTEL_RESOURCE_ATTRIBUTES``.
``OTEL_RESOURCE_ATTRIBUTES``
    ``key=value,key2=value2`` resource attributes (values percent-decoded).
``OTEL_SDK_DISABLED``
    ``true`` turns all in-process tracing off; otel-run still runs the command.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    Comma-separated instrumentation names (entry-point names such as
    ``requests``, ``httpx``, ``urllib3``, ``subprocess``) that are not loaded.
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    When set, otel-run also sends each run to this collector after it ends.
``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
    ``http/protobuf`` (default) or ``grpc``.
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``, ...
    Read by the official OTLP exporters themselves.

otel-run's own variables:

``OTEL_RUN_STORE``
    Directory of the embedded store. Default: ``$XDG_DATA_HOME/otel-run`` or
    ``~/.local/share/otel-run``. otel-run sets it (absolute) for every child.
``OTEL_RUN_PROCESS``
    Set by a traced parent for the child it spawns:
    ``<span_id>-<parent_span_id>-<spawner_pid>-<c|x>-<spawn_time_ns>``. The child
    adopts ``span_id`` as its process span when its parent pid (``c``) or its own
    pid (``x``, after ``exec``) equals ``spawner_pid``; otherwise it is a
    grandchild started by something untraced and makes a span of its own.
``OTEL_RUN_PYLIB``
    Directory that holds the OpenTelemetry libraries otel-run runs with. A traced
    Python that lacks them (another virtualenv, a container) appends it to
    ``sys.path`` when it first needs them, never earlier.
``OTEL_RUN_PROFILE``
    Comma-separated profiles to record in every traced Python process (same as
    ``otel-run --profile``): ``cpu`` (py-spy samples, attributed to the innermost
    span open on the sampled thread), ``memory`` (memray allocations per span),
    ``imports`` (an ``import MODULE`` span per module slower than the threshold).
    otel-run sets it for the command from ``--profile``; unset, nothing is profiled
    and no profiler module is loaded.
``OTEL_RUN_PROFILE_RATE``
    py-spy's sampling rate in Hz (default 100; same as ``--profile-rate``).
``OTEL_RUN_IMPORT_THRESHOLD``
    Milliseconds of cumulative import time below which an import is summed into
    its parent rather than made a span (default 1; ``--import-threshold``).
``OTEL_RUN_PYSPY``
    The py-spy executable the bootstrap starts to sample a process. otel-run
    sets it for the command to the one installed beside it, unless the caller
    set it (another py-spy build).
``OTEL_RUN_IN_CONTAINER``
    Set by otel-run for a container it joins to the trace (``1``): a process
    there stops its py-spy sampler at exit and waits for its output, because the
    container's end kills every process in it, the sampler included.
``OTEL_RUN_CALLER_SIGIGN``
    Set by the ``otel-run`` launcher (a shell script) for the Python half of
    otel-run, never for the command: the signals otel-run's caller ignored, as
    the decimal mask of ``/proc/self/stat``. CPython ignores SIGPIPE and SIGXFSZ
    before any of otel-run's code runs; the command gets the caller's
    dispositions from this. Unset, it gets them at their defaults.
``OTEL_RUN_CONTAINER_MOUNT``
    ``false`` stops ``otel-run docker|podman run`` from bind-mounting otel-run's
    bootstrap, the OpenTelemetry libraries and the store into the container (the
    container still gets ``TRACEPARENT`` and the host's ``OTEL_*`` variables).
    Same as ``otel-run --no-container-mount``.
``OTEL_RUN_REQUIRE_ENGINE``
    Tests only: ``1`` (set by ``.ci/run``) makes the container tests fail, not
    skip, when podman cannot run containers.
``GITHUB_ACTIONS``, ``GITHUB_WORKFLOW``, ``GITHUB_RUN_ID``, ``GITHUB_RUN_ATTEMPT``,
``GITHUB_JOB``, ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL``, ``GITHUB_REF_NAME``, ``GITHUB_SHA``
    Set by GitHub Actions; otel-run's root span gets the CI/CD and VCS
    semantic-convention attributes from them (``otel_run.run._ci``).
``OTEL_RUN_SERVE_TOKEN``
    Bearer token ``otel-trace serve`` requires of senders (same as ``--token``).
    Bound beyond loopback, ``serve`` refuses to start without one (unless
    ``--no-token``).
``GRAFANA_URL`` / ``GRAFANA_TOKEN``
    Read by ``dashboards/push.py`` (not by the package): the Grafana to push the
    dashboards to, and a service-account token.
``OTEL_RUN_DEBUG``
    ``1`` makes the bootstrap and the instrumentations log their own failures
    to stderr (they are silent otherwise, so the traced program's output is
    unchanged).
``OTEL_RUN_EXPORT_TIMEOUT``
    Seconds otel-run waits for the collector at the end of a run (default 5);
    the run's exit status never depends on it.
``OTEL_RUN_REPLAY_CASSETTES``
    Directory of the replay LLM server's cassettes (``otel_run.demo.replay``).
``OTEL_RUN_REPLAY_LATENCY_SCALE``
    Multiplies the recorded latencies the replay server waits (default 1; 0 for
    CLI-only benchmarks).
``OTEL_RUN_REPLAY_UPSTREAM`` / ``OTEL_RUN_REPLAY_UPSTREAM_KEY``
    Record mode: an OpenAI-compatible base URL to forward unknown prompts to,
    and its API key (default ``OPENAI_API_KEY``); answers become cassettes.
``OTEL_RUN_BACKEND_DB``
    SQLite file of the reference backend (``otel_run.demo.backend``).
``OTEL_RUN_BACKEND_LLM_URL`` / ``OTEL_RUN_BACKEND_LLM_MODEL``
    The OpenAI-compatible base URL the reference backend calls (default the
    replay server, ``http://127.0.0.1:8100/v1``) and the model it asks for.
``OTEL_RUN_INSTRUMENTATIONS``
    Comma-separated opt-in instrumentations that are off by default because
    they are costly where they are not wanted (``sqlite3``: every query a span).
``PYTEST_XDIST_WORKER``
    Set by pytest-xdist in each worker (``gw0``, ``gw1``, ...): the worker's
    process span is named after it (its command line is the same for all).
``XDG_DATA_HOME`` / ``HOME``
    Locate the default store.
``XDG_CONFIG_HOME``
    ``otel-vm``'s state directory is ``$XDG_CONFIG_HOME/otel-run/vm/GROUP`` (default
    ``~/.config/…``): the VM's address, its known-hosts file, the collector token and
    Grafana password (0600).
``AZURE_SUBSCRIPTION_ID``
    The Azure subscription ``otel-vm`` works in when ``--subscription`` is not given.
    The credentials are ``azure-identity``'s ``DefaultAzureCredential``: ``AZURE_CLIENT_ID``,
    ``AZURE_TENANT_ID``, ``AZURE_CLIENT_SECRET``, … are read by that library, not by otel-vm.
``OTEL_RUN_VM_SSH``
    The OpenSSH client ``otel-vm`` runs for ``ssh``, ``run``, ``fetch``, ``tunnel`` and the
    wait for cloud-init (default ``ssh`` on PATH).
``COLUMNS``
    Width of ``otel-trace`` tables when stdout is not a terminal (default 160;
    read through :func:`shutil.get_terminal_size`).
``OPENAI_API_KEY``
    The API key the reference backend sends to its LLM and the replay server's
    record mode sends upstream (default: none; the replay server needs none).
"""

TRACEPARENT = "TRACEPARENT"
TRACESTATE = "TRACESTATE"
BAGGAGE = "BAGGAGE"

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"

OTEL_RUN_STORE = "OTEL_RUN_STORE"
OTEL_RUN_PROCESS = "OTEL_RUN_PROCESS"
OTEL_RUN_PYLIB = "OTEL_RUN_PYLIB"
OTEL_RUN_DEBUG = "OTEL_RUN_DEBUG"
OTEL_RUN_CONTAINER_MOUNT = "OTEL_RUN_CONTAINER_MOUNT"
OTEL_RUN_CALLER_SIGIGN = "OTEL_RUN_CALLER_SIGIGN"
OTEL_RUN_SERVE_TOKEN = "OTEL_RUN_SERVE_TOKEN"
OTEL_RUN_REQUIRE_ENGINE = "OTEL_RUN_REQUIRE_ENGINE"
OTEL_RUN_EXPORT_TIMEOUT = "OTEL_RUN_EXPORT_TIMEOUT"
OTEL_RUN_PROFILE = "OTEL_RUN_PROFILE"
OTEL_RUN_PROFILE_RATE = "OTEL_RUN_PROFILE_RATE"
OTEL_RUN_IMPORT_THRESHOLD = "OTEL_RUN_IMPORT_THRESHOLD"
OTEL_RUN_PYSPY = "OTEL_RUN_PYSPY"
OTEL_RUN_IN_CONTAINER = "OTEL_RUN_IN_CONTAINER"

OTEL_RUN_REPLAY_CASSETTES = "OTEL_RUN_REPLAY_CASSETTES"
OTEL_RUN_REPLAY_LATENCY_SCALE = "OTEL_RUN_REPLAY_LATENCY_SCALE"
OTEL_RUN_REPLAY_UPSTREAM = "OTEL_RUN_REPLAY_UPSTREAM"
OTEL_RUN_REPLAY_UPSTREAM_KEY = "OTEL_RUN_REPLAY_UPSTREAM_KEY"

OTEL_RUN_BACKEND_DB = "OTEL_RUN_BACKEND_DB"
OTEL_RUN_BACKEND_LLM_URL = "OTEL_RUN_BACKEND_LLM_URL"
OTEL_RUN_BACKEND_LLM_MODEL = "OTEL_RUN_BACKEND_LLM_MODEL"
OTEL_RUN_INSTRUMENTATIONS = "OTEL_RUN_INSTRUMENTATIONS"

GITHUB_ACTIONS = "GITHUB_ACTIONS"
GITHUB_WORKFLOW = "GITHUB_WORKFLOW"
GITHUB_RUN_ID = "GITHUB_RUN_ID"
GITHUB_RUN_ATTEMPT = "GITHUB_RUN_ATTEMPT"
GITHUB_JOB = "GITHUB_JOB"
GITHUB_REPOSITORY = "GITHUB_REPOSITORY"
GITHUB_SERVER_URL = "GITHUB_SERVER_URL"
GITHUB_REF_NAME = "GITHUB_REF_NAME"
GITHUB_SHA = "GITHUB_SHA"

PYTEST_XDIST_WORKER = "PYTEST_XDIST_WORKER"
XDG_DATA_HOME = "XDG_DATA_HOME"
XDG_CONFIG_HOME = "XDG_CONFIG_HOME"
AZURE_SUBSCRIPTION_ID = "AZURE_SUBSCRIPTION_ID"
OTEL_RUN_VM_SSH = "OTEL_RUN_VM_SSH"
COLUMNS = "COLUMNS"
OPENAI_API_KEY = "OPENAI_API_KEY"
HOME = "HOME"
PYTHONPATH = "PYTHONPATH"
