"""The dashboards: JSON generated from code (no drift), and every panel sound."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"


def _build() -> ModuleType:
    pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk (test extra) is not installed")
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_regenerates_byte_identically_from_code() -> None:
    build = _build()
    assert build.main(["--check"]) == 0
    for name in build.BOARDS:
        assert (DASHBOARDS / f"{name}.json").read_text() == build.render(name)


def test_the_check_fails_when_json_and_code_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = _build()
    for name in build.BOARDS:
        (tmp_path / f"{name}.json").write_text(build.render(name))
    (tmp_path / "llm.json").write_text(build.render("llm").replace("LLM latency", "edited by hand"))
    monkeypatch.setattr(build, "HERE", tmp_path)
    assert build.main(["--check"]) == 1


def _metrics_the_collector_makes() -> set[str]:
    config = yaml.safe_load((REPO / "collector" / "config.yaml").read_text())
    names = {"traces_span_metrics_duration_milliseconds", "traces_span_metrics_calls_total"}
    for metric in config["connectors"]["signaltometrics"]["spans"]:
        suffix = {"By": "_bytes"}.get(metric["unit"], "")
        names.add(metric["name"].replace(".", "_") + suffix)
    return names


@pytest.mark.parametrize("name", ["runs", "boundaries", "llm", "startup"])
def test_every_panel_says_what_it_shows_and_queries_what_exists(name: str) -> None:
    board = json.loads((DASHBOARDS / f"{name}.json").read_text())
    assert board["uid"] == f"otel-run-{name}" and {v["name"] for v in board["templating"]["list"]} >= {"service"}
    known = _metrics_the_collector_makes()
    for panel in board["panels"]:
        assert len(panel.get("description", "")) > 30, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            uid = target["datasource"]["uid"]
            assert uid in ("prometheus", "tempo"), panel["title"]
            if uid == "prometheus":
                found = re.findall(r"\b(traces_span_metrics_\w+|otel_run_\w+)\{", target["expr"])
                assert found, f"{panel['title']}: no span metric in {target['expr']}"
                for metric in found:
                    base = re.sub(r"_(bucket|sum|count)$", "", metric)
                    assert base in known, f"{panel['title']}: {metric} is not produced by collector/config.yaml"
                assert "$service" in target["expr"] or "$__" in target["expr"], panel["title"]
            else:
                assert target["query"].lstrip().startswith("{"), panel["title"]  # TraceQL
