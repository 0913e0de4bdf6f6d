"""The one validator every reader uses (store._validate)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from otel_run.store._validate import (
    DUPLICATE_OF,
    MAX_LINES,
    MAX_VALUE_DEPTH,
    Checker,
    Duplicates,
    Invalid,
    any_value,
    check_index_record,
    hex_id,
    link,
    separate_duplicates,
    time_ns,
)

T = "4bf92f3577b34da6a3ce929d0e0e4736"
S = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (S, S),
        (S.upper(), S),  # OTLP JSON: case-insensitive hex
        (base64.b64encode(bytes.fromhex(S)).decode(), S),  # Tempo's API
    ],
)
def test_span_ids_taken(value: str, expected: str) -> None:
    assert hex_id(value, 8) == expected


@pytest.mark.parametrize(
    "value",
    [
        "zz",
        "abc123",
        "0x0123456789abcd",  # int(value, 16) takes it
        "0123_4567_89ab_c",  # ... and this
        " 123456789abcdef",  # ... and this
        "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦",  # ... and non-ASCII digits
        "0" * 16,  # OTLP: all zeros is invalid
        "",
        12345,
        None,
        ["x"],
        base64.b64encode(b"\x01" * 7).decode(),  # base64 of the wrong length
    ],
)
def test_span_ids_refused(value: Any) -> None:
    with pytest.raises(Invalid):
        hex_id(value, 8)


def test_trace_ids_need_16_bytes() -> None:
    assert hex_id(T, 16) == T
    with pytest.raises(Invalid):
        hex_id(S, 16)


@pytest.mark.parametrize(
    ("value", "expected"), [(5, 5), ("1700000000000000000", 1700000000000000000), (1.7e18, 1.7e18)]
)
def test_times_taken(value: Any, expected: int) -> None:
    assert time_ns(value) == expected


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 1.5, -1, "-5", "9" * 25, 2**64, True, "١٧٠٠", "1e18", " 5", None, "x"]
)
def test_times_refused(value: Any) -> None:
    with pytest.raises(Invalid):
        time_ns(value)


def kvlist(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "deep"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def test_attribute_values() -> None:
    assert any_value({"intValue": "-42"}) == {"intValue": -42}
    assert any_value({"doubleValue": "NaN"})["doubleValue"] != 0  # the protobuf JSON mapping's NaN
    assert any_value({"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": False}]}})
    assert any_value(kvlist(MAX_VALUE_DEPTH - 1))
    for bad in (
        {"intValue": "abc"},
        {"intValue": "9" * 30},
        {"intValue": 1.5},
        {"intValue": True},
        {"doubleValue": "x"},
        {"boolValue": "no"},
        {"stringValue": 5},
        {"arrayValue": "x"},
        {"arrayValue": {"values": "x"}},
        {"kvlistValue": {"values": [{"value": {}}]}},
        kvlist(MAX_VALUE_DEPTH + 1),
        "v",
    ):
        with pytest.raises(Invalid):
            any_value(bad)


def span(span_id: Any, parent: Any = None, **fields: Any) -> dict[str, Any]:
    out = {"traceId": T, "spanId": span_id, "name": "s", "startTimeUnixNano": "10", "endTimeUnixNano": "20"}
    if parent is not None:
        out["parentSpanId"] = parent
    out.update(fields)
    return out


def request(*spans: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": list(spans)}]}]}


def test_a_request_keeps_what_is_valid_and_says_what_is_not() -> None:
    check = Checker("f.jsonl")
    obj = request(
        span(S.upper(), kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_ERROR"}),
        span("zz"),
        span("11" * 8, parent="zz", kind=99, name={"a": 1}, attributes=[{"key": "n", "value": {"intValue": "x"}}]),
        span("22" * 8, startTimeUnixNano=float("nan")),
        span("33" * 8, events=["x", {"name": "e", "timeUnixNano": "15"}], links=[{"traceId": "zz", "spanId": S}]),
        7,
    )
    clean = check.request(obj, 3)
    spans = clean["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["spanId"] for s in spans] == [S, "11" * 8, "33" * 8]
    first, second, third = spans
    assert (first["kind"], first["status"]["code"], first["startTimeUnixNano"]) == (2, 2, 10)
    assert "parentSpanId" not in second and second["kind"] == 1 and second["name"] == "" and second["attributes"] == []
    assert [e["name"] for e in third["events"]] == ["e"] and third["links"] == []
    warnings = check.warnings()
    assert all(w.startswith("f.jsonl:3: ") for w in warnings)
    text = "\n".join(warnings)
    for said in ("spanId 'zz'", "parentSpanId 'zz'", "kind 99", "name", "attribute 'n'", "startTimeUnixNano nan"):
        assert said in text, said
    assert "link" in text and "event" in text and "span skipped: 7 is not an object" in text


def test_documents_that_are_not_requests() -> None:
    check = Checker("f.jsonl")
    assert check.request([1, 2], 2) is None
    assert check.request({"foo": 1}, 3) is None
    assert check.request({"resourceSpans": "x"}, 4) is None
    assert check.request({"resourceSpans": ["x", {"scopeSpans": {}}]}, 5) == {"resourceSpans": []}
    assert len(check.warnings()) == 5
    alone = {"data": []}
    assert Checker("f").request(alone, 1, alone=True) is alone  # the reader names what it looks like


def test_warnings_are_bounded() -> None:
    check = Checker("f")
    for i in range(1000):
        check.request(request(span("zz")), i + 1)  # one kind, counted
        check.request(request(span(f"{i:03d}")), i + 1)  # 1000 kinds
    warnings = check.warnings()
    assert len(warnings) == MAX_LINES and "f:1: span skipped: spanId 'zz'" in warnings[0] and "999 more" in warnings[0]
    assert "more problems" in warnings[-1]


def test_link_breaks_loops_without_recursion() -> None:
    ids = ["r", "a", "b", "c", "d", "s"]
    parents = [None, "r", "c", "b", "b", "s"]  # b <-> c loop (d under it), s its own parent
    starts = [0, 1, 5, 3, 6, 2]
    warnings: list[str] = []
    parent, depth = link(ids, parents, starts, "f", warnings)
    assert parent == [-1, 0, 3, -1, 2, -1]  # the loop is cut at its earliest span, c
    assert depth == [0, 1, 1, 0, 2, 0]
    assert any("its own parent" in w and "span s" in w for w in warnings)
    assert any("loops" in w and "span c shown as a root" in w for w in warnings)


def test_link_on_a_chain_100000_deep() -> None:
    n = 100_000
    ids = [str(i) for i in range(n)]
    parents = [None, *ids[:-1]]
    parent, depth = link(ids, parents, list(range(n)), "f", [])
    assert depth[-1] == n - 1 and parent[-1] == n - 2
    ring = [ids[-1], *ids[:-1]]  # one loop through all of them
    warnings: list[str] = []
    parent, depth = link(ids, ring, list(range(n)), "f", warnings)
    assert parent[0] == -1 and max(depth) == n - 1 and len(warnings) == 1


def test_fragments_merge_different_spans_do_not() -> None:
    dup = Duplicates()
    assert dup.span_id(S, True, 10, "p") == S
    assert dup.span_id(S, False, 99, "q") == S  # otel-run's start/reap/waited record of the same span
    assert dup.span_id(S, True, 10, "p") == S  # an exec that failed wrote the span twice; a retried export
    assert dup.span_id(S, True, 10, None) == S
    other = dup.span_id(S, True, 50, "p")  # another span
    assert other != S and dup.span_id(S, True, 50, "p") == other
    assert dup.span_id(S, True, 10, "x") not in (S, other)
    assert len(dup.found) == 2 and "duplicate span id" in dup.warnings("f")[0]


def test_separate_duplicates_marks_the_later_span() -> None:
    from otel_run.store._model import Span

    first = Span(T, S, None, "first", start_ns=1, end_ns=5)
    later = Span(T, S, None, "later", start_ns=7, end_ns=9)
    warnings: list[str] = []
    separate_duplicates([first, later], "f.jsonl", warnings)
    assert first.span_id == S and later.span_id != S and later.attributes[DUPLICATE_OF] == S
    assert warnings == [
        f"f.jsonl: duplicate span id {S}: two different spans ('first' and 'later'); kept apart, the later as "
        f"{later.span_id}"
    ]


def test_index_records() -> None:
    warnings: list[str] = []
    record = {"run_id": "r", "trace_id": T, "start_ns": "abc", "command": 5, "label": 7, "finished": "yes", "spans": 3}
    assert check_index_record(record, "index.jsonl:4", warnings) == {"run_id": "r", "trace_id": T, "spans": 3}
    assert len(warnings) == 3 and all(w.startswith("index.jsonl:4: index field ") for w in warnings)
    assert check_index_record({"run_id": 5}, "index.jsonl:5", warnings) is None
    assert check_index_record({"run_id": "r", "trace_id": "../../etc/passwd"}, "i:6", warnings) == {"run_id": "r"}
