"""Merging fragments, reading foreign OTLP JSON, and failing on bad files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from otel_run.store._store import Store, StoreError, load_trace_file

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(
    span_id: str, parent: str | None, name: str, start: int, end: int, record: str | None = None, **attrs: Any
) -> dict[str, Any]:
    attributes = [
        {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}}
        for k, v in attrs.items()
    ]
    if record:
        attributes.append({"key": "otel_run.record", "value": {"stringValue": record}})
    out: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attributes,
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def request(service: str, *spans: dict[str, Any], scope: str = "otel-run") -> str:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": scope}, "spans": list(spans)}],
                }
            ]
        }
    )


ROOT, CHILD, GRAND, LEAF = "a" * 16, "b" * 16, "c" * 16, "d" * 16


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_fragments_merge_into_one_span(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        request("otel-run", span(ROOT, None, "otel-run x", 0, 100, **{"otel_run.run.id": ROOT})),
        request("python", span(CHILD, ROOT, "child.py", 10, 10, "start", **{"process.parent_pid": 1})),
        request(
            "python",
            span(
                CHILD,
                ROOT,
                "child.py",
                10,
                80,
                **{"process.parent_pid": 1, "process.exit.code": 0, "otel_run.process.cpu.user": 1},
            ),
        ),
        request(
            "sh",
            span(
                CHILD,
                ROOT,
                "sh -c child.py",
                10,
                90,
                "reap",
                **{
                    "process.parent_pid": 1,
                    "process.exit.code": 3,
                    "otel_run.process.max_rss.tree": 4096,
                    "otel_run.process.cpu.tree.user": 9,
                },
            ),
        ),
    )
    trace = load_trace_file(str(path))
    assert len(trace.spans) == 2
    child = trace.by_id[CHILD]
    assert child.service == "python" and child.name == "child.py"  # the process's own view
    assert child.attributes["process.exit.code"] == 3  # the kernel's
    # the reaper's wait4 figures are the tree's and never replace the process's own
    assert child.attributes["otel_run.process.cpu.user"] == 1
    assert child.attributes["otel_run.process.cpu.tree.user"] == 9
    assert child.attributes["otel_run.process.max_rss.tree"] == 4096
    assert (child.start_ns, child.end_ns) == (10, 90)
    assert "otel_run.record" not in child.attributes
    assert child.parent is trace.by_id[ROOT]


def test_start_only_span_is_unfinished_error_ending_with_its_last_descendant(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        request("python", span(CHILD, None, "killed.py", 10, 10, "start", **{"process.parent_pid": 1})),
        request("python", span(GRAND, CHILD, "work", 20, 30), span(LEAF, GRAND, "deeper", 25, 70)),
    )
    trace = load_trace_file(str(path))
    killed = trace.by_id[CHILD]
    assert killed.unfinished and killed.status_code == 2
    assert killed.end_ns == 70


def test_waited_record_completes_a_start_and_alone_is_a_process_seen_from_outside(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        request("python", span(CHILD, ROOT, "worker", 10, 10, "start", **{"process.parent_pid": 1})),
        request("", span(CHILD, ROOT, "", 50, 50, "waited", **{"process.exit.code": 143})),
        # a child killed before it wrote anything: its reaper's record is all there is, and it is kept
        request("", span(GRAND, ROOT, "process 9", 60, 60, "waited", **{"process.exit.code": 0, "process.pid": 9})),
        request("otel-run", span(ROOT, None, "root", 0, 100)),
    )
    trace = load_trace_file(str(path))
    assert set(trace.by_id) == {ROOT, CHILD, GRAND}
    worker = trace.by_id[CHILD]
    assert not worker.unfinished and worker.end_ns == 50
    assert worker.attributes["process.exit.code"] == 143 and worker.service == "python"
    unseen = trace.by_id[GRAND]
    assert unseen.name == "process 9" and unseen.parent is trace.by_id[ROOT]
    assert "otel_run.record" not in unseen.attributes


def test_exec_keeps_the_latest_complete_record(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        request("python", span(CHILD, None, "first", 0, 40, **{"otel_run.exec.command_args": "x"})),
        request("python", span(CHILD, None, "second", 0, 90)),
    )
    assert load_trace_file(str(path)).by_id[CHILD].name == "second"


def test_reads_tempo_style_base64_ids_and_single_documents(tmp_path: Path) -> None:
    doc = {
        "batches": [
            {
                "resource": {"attributes": []},
                "instrumentationLibrarySpans": [
                    {
                        "spans": [
                            {
                                "traceId": base64.b64encode(bytes.fromhex(TRACE)).decode(),
                                "spanId": base64.b64encode(bytes.fromhex(ROOT)).decode(),
                                "name": "from tempo",
                                "startTimeUnixNano": 5,
                                "endTimeUnixNano": 9,
                                "kind": "SPAN_KIND_SERVER",
                                "status": {"code": "STATUS_CODE_ERROR"},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    path = tmp_path / "tempo.json"
    path.write_text(json.dumps(doc, indent=2))
    trace = load_trace_file(str(path))
    only = trace.by_id[ROOT]
    assert (only.trace_id, only.name, only.kind, only.status_code, only.duration_ns) == (TRACE, "from tempo", 2, 2, 4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\xff\xfe garbage bytes", "not OTLP JSON"),
        (b'{"data": [{"traceID": "abc", "spans": []}]}\n', "looks like Jaeger"),
        (b'[{"traceId": "x", "id": "y", "name": "zipkin"}]', "not OTLP JSON"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        load_trace_file(str(path))
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = request("a", span(ROOT, None, "kept", 0, 1))
    path = tmp_path / "t.jsonl"
    path.write_text(good + "\n" + good[: len(good) // 2])
    trace = load_trace_file(str(path))
    assert [s.name for s in trace.spans] == ["kept"]
    assert trace.warnings and "incomplete last line" in trace.warnings[0]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (b"{broken", "Expecting property name"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "4bf9', "Unterminated string"),
        (b'{"resourceSpans": [{"scopeSpans": []}], "x": "\xff\xfe"}', "not UTF-8 text"),
    ],
)
def test_a_damaged_line_is_skipped_naming_file_line_and_count(tmp_path: Path, damage: bytes, reason: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        request("a", span(ROOT, None, "first", 0, 1)).encode()
        + b"\n"
        + damage
        + b"\n"
        + request("a", span(CHILD, ROOT, "after", 0, 1)).encode()
        + b"\n"
    )
    trace = load_trace_file(str(path))
    assert sorted(s.name for s in trace.spans) == ["after", "first"]
    (warning,) = trace.warnings
    assert warning.startswith(f"{path}:2: damaged line skipped (") and reason in warning
    assert "1 record skipped, 2 read" in warning


def test_a_torn_record_followed_on_its_line_by_a_whole_one_gives_the_whole_one(tmp_path: Path) -> None:
    good = request("a", span(ROOT, None, "kept", 0, 1))
    path = tmp_path / "t.jsonl"
    path.write_text(good[:40] + good + "\n")  # a write cut short, then a writer that did not resynchronise
    trace = load_trace_file(str(path))
    assert [s.name for s in trace.spans] == ["kept"]
    assert "cut short, then a whole record" in trace.warnings[0]


def test_several_damaged_lines_are_one_warning(tmp_path: Path) -> None:
    good = request("a", span(ROOT, None, "kept", 0, 1))
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(["{torn", good, "{torn", "", "{torn", good]) + "\n")
    trace = load_trace_file(str(path))
    (warning,) = trace.warnings
    assert warning.startswith(f"{path}: 3 damaged lines skipped (line 1: ") and "line 5:" in warning
    assert "3 records skipped, 2 read" in warning


def test_an_oversized_line_is_skipped_without_holding_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_run.store import _store

    monkeypatch.setattr(_store, "_MAX_LINE", 1 << 16)
    monkeypatch.setattr(_store, "MAX_RECORD", (1 << 16) - 1)
    good = request("a", span(ROOT, None, "kept", 0, 1))
    path = tmp_path / "t.jsonl"
    path.write_text(good + "\n" + "x" * (5 << 16) + "\n" + good.replace(ROOT, CHILD) + "\n")
    trace = load_trace_file(str(path))
    assert len(trace.spans) == 2
    assert trace.warnings == [f"{path}:2: damaged line skipped (longer than 0 MiB): 1 record skipped, 2 read"]


def test_a_damaged_index_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "index.jsonl").write_text(
        '{"run_id": "r1", "event": "start", "start_ns": 1}\nnot json\n{"run_id": "r2", "event": "start", "start_ns": 2}\n'
    )
    store = Store(str(tmp_path))
    assert [r.run_id for r in store.runs()] == ["r1", "r2"]
    assert store.warnings == [
        f"{store.index_path}:2: damaged line skipped (expecting a JSON value at char 0): 1 index line skipped, 2 read"
    ]


def test_find_run_by_prefix_trace_and_last(tmp_path: Path) -> None:
    lines = [
        {"event": "start", "run_id": "aaaa1111", "trace_id": "t1" * 16, "start_ns": 1, "label": "base"},
        {"event": "end", "run_id": "aaaa1111", "end_ns": 5, "exit_code": 0},
        {"event": "start", "run_id": "aaaa2222", "trace_id": "t2" * 16, "start_ns": 2},
        {"event": "start", "run_id": "bbbb3333", "trace_id": "t3" * 16, "start_ns": 3},
    ]
    (tmp_path / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    store = Store(str(tmp_path))
    assert store.find_run().run_id == "bbbb3333"
    assert store.find_run("bbbb").run_id == "bbbb3333"
    assert store.find_run("t1t1").run_id == "aaaa1111"
    first = store.find_run("aaaa1111")
    assert first.finished and first.wall_ms == 4e-6 and first.label == "base"
    assert not store.find_run("aaaa2222").finished
    with pytest.raises(StoreError, match="ambiguous"):
        store.find_run("aaaa")
    with pytest.raises(StoreError, match="no run or trace 'zzzz'"):
        store.find_run("zzzz")
    with pytest.raises(StoreError, match="no runs stored yet"):
        Store(str(tmp_path / "empty")).find_run()


def test_a_process_killed_by_a_signal_another_process_of_the_trace_sent_is_no_error(tmp_path: Path) -> None:
    main = span(ROOT, None, "main", 0, 100)
    main["events"] = [
        {
            "timeUnixNano": "40",
            "name": "otel_run.signal.sent",
            "attributes": [
                {"key": "process.pid", "value": {"intValue": "77"}},
                {"key": "otel_run.process.signal", "value": {"stringValue": "SIGTERM"}},
            ],
        }
    ]
    worker = {"process.pid": 77, "otel_run.process.signal": "SIGTERM", "process.exit.code": 143}
    stranger = {"process.pid": 78, "otel_run.process.signal": "SIGTERM", "process.exit.code": 143}
    killed = [span(CHILD, ROOT, "worker", 10, 50, "waited", **worker), span(GRAND, ROOT, "other", 10, 50, **stranger)]
    for s in killed:
        s["status"] = {"code": 2, "message": "killed by SIGTERM"}
    trace = load_trace_file(str(write(tmp_path / "t.jsonl", request("x", main, *killed))))
    asked, other = trace.by_id[CHILD], trace.by_id[GRAND]
    assert asked.status_code == 0 and asked.attributes["otel_run.process.signal.expected"] is True
    assert other.status_code == 2  # nobody in the trace sent it
