from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("text", ['{"a": "ke', '{"resourceSp', '["ab', '{"a": 1', "[1, 2"])
def test_truncated_json_is_a_value_error_in_a_fresh_interpreter(text: str) -> None:
    # _json reports some errors through json.decoder; in a process that never
    # imported json (otel-run's own) that used to be a SystemError
    probe = (
        "import sys\n"
        "from otel_run.store._jsonl import loads\n"
        "try:\n"
        "    loads(sys.argv[1])\n"
        "except ValueError:\n"
        "    print('ValueError')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, text], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ValueError", result.stderr
