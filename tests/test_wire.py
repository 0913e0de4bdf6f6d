"""The wire format: ids, traceparent, OTLP JSON, the span writer."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from otel_run import _wire
from otel_run._wire import SpanWriter


def test_traceparent_parsing() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert _wire.parse_traceparent(good) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert _wire.parse_traceparent(good.upper()) is not None
    for bad in (
        "",
        "junk",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-xyz-00f067aa0ba902b7-01",
    ):
        assert _wire.parse_traceparent(bad) is None
    # future versions may append fields
    assert _wire.parse_traceparent(good.replace("00-", "01-", 1) + "-more") is not None


def test_resource_attributes_parsing() -> None:
    assert _wire.parse_resource_attributes("a=1, b = two%20words ,bad,c=%E2%9C%93") == {
        "a": "1",
        "b": "two words",
        "c": "✓",
    }


def test_derived_span_ids_are_stable_and_distinct() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    ids = {_wire.derived_span_id(trace, parent, pid) for parent in range(100, 110) for pid in range(1000, 1100)}
    assert len(ids) == 1000
    assert _wire.derived_span_id(trace, 1, 2) == _wire.derived_span_id(trace, 1, 2)
    assert all(len(i) == 16 and i != "0" * 16 for i in ids)


def test_span_json_is_valid_otlp_json_with_redaction() -> None:
    line = _wire.request_json(
        _wire.attributes_json({"service.name": "svc"}),
        _wire.OTEL_RUN_SCOPE,
        [
            _wire.span_json(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                None,
                'quote " and \n newline \udcff',
                1,
                2,
                {"s": "x", "i": 3, "f": 1.5, "b": True, "l": ["a", 1], "nan": float("nan"), "api_key": "secret-value"},
                events=[("e", 1, {"k": "v"})],
                status=(_wire.STATUS_ERROR, "boom"),
            )
        ],
    )
    data = json.loads(line.encode("utf-8", "backslashreplace"))
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["name"].startswith('quote " and \n newline')
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["i"] == {"intValue": "3"} and attrs["b"] == {"boolValue": True}
    assert attrs["f"] == {"doubleValue": 1.5} and attrs["nan"] == {"doubleValue": "NaN"}
    assert attrs["l"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}
    assert attrs["api_key"] == {"stringValue": "REDACTED"}
    assert span["status"] == {"code": 2, "message": "boom"}


def test_a_record_after_a_torn_tail_starts_on_a_line_of_its_own(tmp_path: Path) -> None:
    writer = SpanWriter(str(tmp_path))
    trace_id = "ab" * 16
    path = Path(writer.path(trace_id))
    path.parent.mkdir()
    path.write_bytes(b'{"resourceSpans":[{"resou')  # another process's write, cut short
    writer.write(trace_id, '{"resourceSpans":[]}')
    writer.write(trace_id, '{"resourceSpans":[]}')
    assert path.read_bytes() == b'{"resourceSpans":[{"resou\n{"resourceSpans":[]}\n{"resourceSpans":[]}\n'


def test_the_writer_makes_private_files_and_directories_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        writer = SpanWriter(str(tmp_path / "store"))
        writer.write("cd" * 16, "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "store").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "store" / "traces").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(writer.path("cd" * 16)).st_mode) == 0o600


def test_a_record_over_the_limit_is_refused_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wire, "MAX_RECORD", 10)
    writer = SpanWriter(str(tmp_path))
    with pytest.raises(OSError) as info:
        writer.write("ef" * 16, '{"resourceSpans":[]}')
    assert info.value.errno == errno.EFBIG
    assert Path(writer.path("ef" * 16)).read_bytes() == b""
