"""The collector configuration, validated structurally.

No OpenTelemetry Collector (contrib) binary or image can be fetched here, so
the configuration cannot be run; this checks what the collector itself checks
at start-up: every pipeline names defined components, every component type
exists in the contrib distribution, connectors join pipelines of the right
signals, persistent queues name an enabled storage extension — for the base
file and for the VM overlay merged over it (maps merge, lists replace, as the
collector's confmap does).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"

# Component types of opentelemetry-collector-contrib (its builder manifest), the ones this project may use.
KNOWN = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "filelog"},
    "processors": {"memory_limiter", "batch", "attributes", "resource", "transform", "filter", "tail_sampling"},
    "exporters": {"otlp", "otlphttp", "prometheusremotewrite", "prometheus", "debug", "file"},
    "connectors": {"spanmetrics", "servicegraph", "signaltometrics", "forward", "count"},
    "extensions": {"health_check", "file_storage", "bearertokenauth", "basicauth", "pprof", "zpages"},
}
# connector type -> (signal it receives as an exporter, signal it emits as a receiver)
CONNECTOR_SIGNALS = {"spanmetrics": ("traces", "metrics"), "servicegraph": ("traces", "metrics"),
                     "signaltometrics": ("traces", "metrics")}  # fmt: skip


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((COLLECTOR / name).read_text())
    assert isinstance(data, dict), name
    return data


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


CONFIGS = {"base": lambda: _load("config.yaml"), "vm": lambda: _merge(_load("config.yaml"), _load("vm.yaml"))}


@pytest.mark.parametrize("variant", sorted(CONFIGS))
def test_every_reference_resolves_and_every_type_exists(variant: str) -> None:
    config = CONFIGS[variant]()
    for section, known in KNOWN.items():
        for component in config.get(section) or {}:
            assert _type(component) in known, f"{section}.{component}: not a contrib component type"
    service = config["service"]
    for extension in service.get("extensions", []):
        assert extension in config["extensions"], f"service.extensions: {extension} is not defined"
    for name, pipeline in service["pipelines"].items():
        signal = name.split("/", 1)[0]
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                defined = config.get(kind, {}) or {}
                if kind != "processors" and component in (config.get("connectors") or {}):
                    wanted = CONNECTOR_SIGNALS[_type(component)][0 if kind == "exporters" else 1]
                    assert signal == wanted, f"{name}: connector {component} as {kind[:-1]} of {signal}"
                    continue
                assert component in defined, f"pipelines.{name}.{kind}: {component} is not defined"
    used = {c for p in service["pipelines"].values() for k in ("receivers", "exporters") for c in p.get(k, [])}
    for connector in config.get("connectors") or {}:
        pipelines = service["pipelines"].values()
        assert any(connector in p.get("exporters", []) for p in pipelines), f"{connector} never fed"
        assert any(connector in p.get("receivers", []) for p in pipelines), f"{connector} never read"
        assert connector in used


@pytest.mark.parametrize("variant", sorted(CONFIGS))
def test_queues_are_persisted_and_memory_is_limited_first(variant: str) -> None:
    config = CONFIGS[variant]()
    enabled = set(config["service"]["extensions"])
    for name, exporter in config["exporters"].items():
        queue = (exporter or {}).get("sending_queue")
        if queue:
            assert queue.get("storage") in enabled, f"{name}: queue storage is not an enabled extension"
            assert _type(queue["storage"]) == "file_storage"
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
        assert "batch" in pipeline["processors"], name
    assert "health_check" in enabled


def test_the_vm_overlay_secures_every_receiver_protocol() -> None:
    config = CONFIGS["vm"]()
    for protocol, settings in config["receivers"]["otlp"]["protocols"].items():
        assert settings["tls"]["cert_file"] and settings["tls"]["key_file"], protocol
        authenticator = settings["auth"]["authenticator"]
        assert _type(authenticator) == "bearertokenauth" and authenticator in config["service"]["extensions"]
    assert config["extensions"]["bearertokenauth/receivers"]["token"].startswith("${env:")
