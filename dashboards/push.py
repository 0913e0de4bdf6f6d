"""Push the dashboards in dashboards/*.json to a Grafana, with grafana-client.

    GRAFANA_URL=https://grafana.example GRAFANA_TOKEN=glsa_… .venv/bin/python dashboards/push.py [--dry-run]

Idempotent: the folder (uid ``otel-run``) is created once; each dashboard is
written with its own uid into that folder, replacing the previous version
(``overwrite``), and skipped when Grafana already has exactly this JSON.
``--dry-run`` says what would be created, updated or left alone, and writes
nothing. Errors are one line naming the dashboard and Grafana's answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FOLDER_UID = "otel-run"
FOLDER_TITLE = "otel-run"
# names of the environment variables this script reads (documented in otel_run._env as well)
GRAFANA_URL = "GRAFANA_URL"
GRAFANA_TOKEN = "GRAFANA_TOKEN"


class PushError(Exception):
    """A failure to report on one line."""


def push(api: Any, boards: Mapping[str, dict[str, Any]], dry_run: bool = False) -> list[str]:
    """Create or update ``boards`` (uid -> dashboard JSON); returns one line per action."""
    from grafana_client.client import GrafanaClientError

    lines = []
    try:
        api.folder.get_folder(FOLDER_UID)
        folder_exists = True
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) != 404:
            raise PushError(f"folder {FOLDER_UID}: {exc}") from exc
        folder_exists = False
    if not folder_exists:
        lines.append(f"create folder {FOLDER_TITLE} ({FOLDER_UID})")
        if not dry_run:
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    for uid, board in boards.items():
        try:
            current = api.dashboard.get_dashboard(uid)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise PushError(f"dashboard {uid}: {exc}") from exc
            current = None
        if (
            current is not None
            and _same(current.get("dashboard", {}), board)
            and (current.get("meta", {}).get("folderUid") == FOLDER_UID)
        ):
            lines.append(f"unchanged {uid}")
            continue
        lines.append(f"{'update' if current else 'create'} {uid} ({board.get('title')})")
        if not dry_run:
            payload = {"dashboard": {**board, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
                       "message": "otel-run dashboards/push.py"}  # fmt: skip
            try:
                api.dashboard.update_dashboard(payload)
            except GrafanaClientError as exc:
                raise PushError(f"dashboard {uid}: {exc}") from exc
    return lines


def load(directory: Path = HERE) -> dict[str, dict[str, Any]]:
    boards = {}
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        boards[board["uid"]] = board
    return boards


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    parser.add_argument("--url", help=f"Grafana URL (default: ${GRAFANA_URL})")
    args = parser.parse_args(argv)
    url = args.url or environ.get(GRAFANA_URL)
    token = environ.get(GRAFANA_TOKEN)
    if not url:
        sys.stderr.write(f"push: error: no Grafana URL (set {GRAFANA_URL} or --url)\n")
        return 2
    from grafana_client import GrafanaApi

    api = GrafanaApi.from_url(url, credential=token, timeout=10.0)
    try:
        for line in push(api, load(), args.dry_run):
            sys.stdout.write(("(dry run) " if args.dry_run else "") + line + "\n")
    except PushError as exc:
        sys.stderr.write(f"push: error: {exc}\n")
        return 1
    except Exception as exc:  # connection refused, TLS, …: one line, no traceback
        sys.stderr.write(f"push: error: {url}: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


def _same(current: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    ignore = {"id", "version"}
    return {k: v for k, v in current.items() if k not in ignore} == {k: v for k, v in ours.items() if k not in ignore}


if __name__ == "__main__":
    raise SystemExit(main())
