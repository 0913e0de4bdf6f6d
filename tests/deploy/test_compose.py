"""docker-compose.yml, Tempo/Prometheus configs and Grafana provisioning, validated.

No image can be pulled here, so the stack cannot start; what can be checked is:
the compose file against the Compose Specification JSON schema (shipped in the
``docker-compose`` 1.29.2 wheel on PyPI, fetched with ``pip download``), the
project's own rules (pinned images, loopback-only ports, health checks,
persistent volumes, mounted files exist), and the provisioning files against
Grafana's documented fields.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-run" / "compose_spec.json"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _schema() -> dict[str, Any]:
    if not SCHEMA_CACHE.exists():
        # other checkouts' suites on the machine share the cache: download privately, publish atomically
        SCHEMA_CACHE.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=SCHEMA_CACHE.parent) as target:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "docker-compose==1.29.2", "-d", target],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0:
                pytest.skip(f"cannot fetch the Compose Specification schema from PyPI: {result.stderr.strip()[-200:]}")
            wheel = next(Path(target).glob("docker_compose-*.whl"))
            partial = Path(target) / "compose_spec.json"
            with zipfile.ZipFile(wheel) as z:
                partial.write_bytes(z.read("compose/config/compose_spec.json"))
            os.replace(partial, SCHEMA_CACHE)
    schema: dict[str, Any] = json.loads(SCHEMA_CACHE.read_text())
    return schema


def test_compose_file_follows_the_compose_specification() -> None:
    from jsonschema import Draft201909Validator

    Draft201909Validator(_schema()).validate(_compose())


def test_images_pinned_ports_on_loopback_health_checked_volumes_persistent() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"collector", "tempo", "prometheus", "grafana"}
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: image {image} is not pinned to a version"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is published beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: mounts {source}, which is not in the repository"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
        if name != "collector":  # the contrib image has no shell or wget; the others depend on it
            assert service["healthcheck"]["test"][0] == "CMD", name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "--web.enable-remote-write-receiver" in services["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]


def test_the_collector_and_tempo_point_at_the_compose_services() -> None:
    collector = yaml.safe_load((REPO / "collector" / "config.yaml").read_text())
    assert collector["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"
    assert collector["exporters"]["prometheusremotewrite"]["endpoint"] == "http://prometheus:9090/api/v1/write"
    tempo = yaml.safe_load((REPO / "collector" / "tempo.yaml").read_text())
    assert tempo["server"]["http_listen_port"] == 3200
    assert "local-blocks" not in tempo["overrides"]["defaults"]["metrics_generator"]["processors"]  # gone in Tempo 3
    assert tempo["metrics_generator"]["storage"]["remote_write"][0]["url"] == "http://prometheus:9090/api/v1/write"


def test_datasources_are_provisioned_and_linked_both_ways() -> None:
    provisioning = REPO / "dashboards" / "provisioning"
    data = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    assert data["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in data["datasources"]}
    for source in by_uid.values():
        assert {"name", "type", "uid", "access", "url"} <= set(source), source
        assert source["access"] == "proxy"
    tempo, prometheus = by_uid["tempo"], by_uid["prometheus"]
    assert (tempo["type"], prometheus["type"]) == ("tempo", "prometheus")
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "tempo"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "dashboards.yaml").read_text())
    [provider] = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_vm_overlay_adds_tls_and_the_token_and_publishes_nothing() -> None:
    from jsonschema import Draft201909Validator

    overlay = yaml.safe_load((REPO / "docker-compose.vm.yml").read_text())
    Draft201909Validator(_schema()).validate(overlay)
    [collector] = overlay["services"].values()
    assert set(overlay["services"]) == {"collector"}
    assert "ports" not in collector  # the base file's loopback-only ports stay the only ones
    assert collector["command"] == [
        "--config=/etc/otelcol-contrib/config.yaml",
        "--config=/etc/otelcol-contrib/vm.yaml",
    ]
    assert collector["environment"]["OTEL_RUN_COLLECTOR_TOKEN"].startswith("${OTEL_RUN_COLLECTOR_TOKEN:?")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    assert mounts["/etc/otelcol-contrib/vm.yaml"] == "./collector/vm.yaml" and (REPO / "collector" / "vm.yaml").exists()
    assert mounts["/etc/otelcol/tls"] == "/etc/otelcol/tls"
    vm = yaml.safe_load((REPO / "collector" / "vm.yaml").read_text())
    for protocol in ("grpc", "http"):
        receiver = vm["receivers"]["otlp"]["protocols"][protocol]
        assert receiver["tls"]["cert_file"] == "/etc/otelcol/tls/cert.pem"  # made on the VM by cloud-init
        assert receiver["auth"]["authenticator"] == "bearertokenauth/receivers"
