"""The reference backend in-process (Django test client) against a real replay
LLM server on loopback: response shapes codeflash parses, and the drift record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

pytest.importorskip("django", reason="the demo extra is not installed")
pytest.importorskip("codeflash", reason="the demo extra is not installed")

from otel_run.demo.replay import _app as replay
from otel_run.demo.replay._cassettes import Library
from tests.conftest import REPO

SQUARES = "```python:src/squares.py\n" + (REPO / "bench/fixture/src/squares.py").read_text().rstrip("\n") + "\n```"


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = make_server(
        "127.0.0.1",
        0,
        replay.ReplayApp(Library(str(REPO / "bench/fixture/cassettes")), 0),
        server_class=_Threaded,
        handler_class=_Quiet,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with pytest.MonkeyPatch.context() as env:  # the settings read these; later tests must not see them
        env.setenv("OTEL_RUN_BACKEND_LLM_URL", f"http://127.0.0.1:{server.server_port}/v1")
        env.setenv("OTEL_RUN_BACKEND_DB", str(tmp_path_factory.mktemp("db") / "backend.sqlite3"))
        env.setenv("DJANGO_SETTINGS_MODULE", "otel_run.demo.backend.settings")
        import django
        from django.core.management import call_command
        from django.test import Client

        django.setup()
        call_command("migrate", run_syncdb=True, verbosity=0)
        yield Client(HTTP_HOST="127.0.0.1")
    server.shutdown()


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_optimize_returns_candidates_codeflash_can_parse(client: Any) -> None:
    from codeflash.models.models import CodeStringsMarkdown

    response = post(
        client,
        "/ai/optimize",
        {
            "source_code": SQUARES,
            "trace_id": "t-1",
            "n_candidates": 6,
            "language_version": "3.11.7",
            "codeflash_version": "0.20.6",
        },
    )
    assert response.status_code == 200
    [candidate] = response.json()["optimizations"]
    assert isinstance(candidate["optimization_id"], str) and candidate["explanation"]
    code = CodeStringsMarkdown.parse_markdown_code(candidate["source_code"], expected_language="python")
    assert [str(c.file_path) for c in code.code_strings] == ["src/squares.py"]
    assert "(2 * n - 1) // 6" in code.code_strings[0].code


def test_nothing_found_is_an_empty_list_and_a_404_where_codeflash_wants_one(client: Any) -> None:
    unknown = "```python:src/other.py\ndef other():\n    return 1\n```"
    response = post(client, "/ai/optimize", {"source_code": unknown, "trace_id": "t-2"})
    assert response.json() == {"optimizations": []}
    repair = post(
        client,
        "/ai/code_repair",
        {
            "optimization_id": "o",
            "original_source_code": unknown,
            "modified_source_code": unknown,
            "trace_id": "t-2",
            "test_diffs": [],
        },
    )
    assert repair.status_code == 404 and "error" in repair.json()


def test_testgen_returns_instrumented_tests_with_the_client_placeholder(client: Any, tmp_path: Path) -> None:
    body = {
        "source_code_being_tested": SQUARES,
        "function_to_optimize": {
            "function_name": "sum_of_squares",
            "file_path": str(tmp_path / "src/squares.py"),
            "parents": [],
            "starting_line": 1,
            "ending_line": 6,
            "is_async": False,
            "is_method": False,
            "language": "python",
        },
        "module_path": "src.squares",
        "test_module_path": "tests.test_sum_of_squares__unit_test_0",
        "test_framework": "pytest",
        "test_timeout": 15,
        "trace_id": "t-3",
        "test_index": 0,
        "qualified_name": "sum_of_squares",
    }
    response = post(client, "/ai/testgen", body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert "from src.squares import sum_of_squares" in data["generated_tests"]
    for key in ("instrumented_behavior_tests", "instrumented_perf_tests"):
        assert "codeflash_wrap" in data[key]
    assert "{codeflash_run_tmp_dir_client_side}" in data["instrumented_behavior_tests"]


def test_drift_is_recorded(client: Any) -> None:
    post(client, "/ai/optimize", {"source_code": SQUARES, "trace_id": "t-4", "brand_new_field": 1})
    missing = post(client, "/ai/explain", {"source_code": "x"})
    assert missing.status_code == 422 and "trace_id" in missing.json()["error"]
    assert client.post("/ai/no-such-endpoint").status_code == 404
    drift = client.get("/internal/contract").json()["drift"]
    kinds = {(d["endpoint"], d["kind"]) for d in drift}
    assert ("/ai/optimize", "unknown-fields") in kinds
    assert ("/ai/explain", "invalid") in kinds
    assert ("/ai/no-such-endpoint", "unknown-route") in kinds
    assert any("brand_new_field" in d["detail"] for d in drift)
