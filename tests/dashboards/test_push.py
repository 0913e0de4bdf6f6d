"""dashboards/push.py against a stand-in for Grafana's HTTP API.

No Grafana can run here. The stand-in is a loopback HTTP server that answers
the documented endpoints push.py uses the way Grafana documents them
(https://grafana.com/docs/grafana/latest/developers/http_api/folder/ and
.../dashboard/): ``GET/POST /api/folders``, ``GET /api/dashboards/uid/:uid``,
``POST /api/dashboards/db``, with bearer-token auth and 404/401/412 answers.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "glsa_test_token"


class FakeGrafana:
    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.writes = 0


@pytest.fixture
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(401, {"message": "Unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path.startswith("/api/folders/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.folders:
                    self._send(200, state.folders[uid])
                else:
                    self._send(404, {"message": "folder not found", "status": "not-found"})
            elif self.path.startswith("/api/dashboards/uid/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.dashboards:
                    self._send(200, state.dashboards[uid])
                else:
                    self._send(404, {"message": "Dashboard not found"})
            else:
                self._send(404, {"message": "not found"})

        def do_POST(self) -> None:
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/api/folders":
                folder = {"uid": body.get("uid"), "title": body["title"], "id": len(state.folders) + 1}
                state.folders[folder["uid"]] = folder
                state.writes += 1
                self._send(200, folder)
            elif self.path == "/api/dashboards/db":
                board = body["dashboard"]
                uid = board["uid"]
                if uid in state.dashboards and not body.get("overwrite"):
                    self._send(
                        412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
                    )
                    return
                version = state.dashboards.get(uid, {}).get("dashboard", {}).get("version", 0) + 1
                stored = {**board, "id": 7, "version": version}
                state.dashboards[uid] = {"dashboard": stored, "meta": {"folderUid": body.get("folderUid")}}
                state.writes += 1
                self._send(200, {"status": "success", "uid": uid, "version": version, "id": 7})
            else:
                self._send(404, {"message": "not found"})

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def _push_module() -> ModuleType:
    pytest.importorskip("grafana_client", reason="grafana-client (test extra) is not installed")
    spec = importlib.util.spec_from_file_location("dashboards_push", REPO / "dashboards" / "push.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_push_creates_then_is_idempotent_and_dry_run_writes_nothing(
    grafana: tuple[str, FakeGrafana], capsys: pytest.CaptureFixture[str]
) -> None:
    url, state = grafana
    push = _push_module()
    env = {"GRAFANA_URL": url, "GRAFANA_TOKEN": TOKEN}
    assert push.main(["--dry-run"], env) == 0
    assert state.writes == 0 and "(dry run) create folder" in capsys.readouterr().out
    assert push.main([], env) == 0
    out = capsys.readouterr().out
    uids = {json.loads(p.read_text())["uid"] for p in (REPO / "dashboards").glob("*.json")}
    assert set(state.dashboards) == uids and set(state.folders) == {"otel-run"}
    assert all(d["meta"]["folderUid"] == "otel-run" for d in state.dashboards.values())
    assert out.count("create otel-run-") == len(uids)
    writes = state.writes
    assert push.main([], env) == 0  # a second push changes nothing
    assert state.writes == writes and capsys.readouterr().out.count("unchanged") == len(uids)
    state.dashboards["otel-run-llm"]["dashboard"]["title"] = "edited in the UI"
    assert push.main([], env) == 0
    assert "update otel-run-llm" in capsys.readouterr().out
    assert state.dashboards["otel-run-llm"]["dashboard"]["title"] == "otel-run: LLM"  # same uid, replaced


def test_wrong_token_and_missing_url_are_one_line_errors(
    grafana: tuple[str, FakeGrafana], capsys: pytest.CaptureFixture[str]
) -> None:
    url, state = grafana
    push = _push_module()
    assert push.main([], {"GRAFANA_URL": url, "GRAFANA_TOKEN": "wrong"}) == 1
    err = capsys.readouterr().err
    assert err.startswith("push: error:") and len(err.strip().splitlines()) == 1 and state.writes == 0
    assert push.main([], {}) == 2 and "GRAFANA_URL" in capsys.readouterr().err
