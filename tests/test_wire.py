"""The wire format: ids, traceparent, OTLP JSON."""

from __future__ import annotations

import json

from otel_run import _wire


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
