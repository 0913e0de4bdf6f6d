from __future__ import annotations

import math

from otel_run.analyse._diff import DiffResult, Row, diff, significant_slowdowns
from otel_run.analyse._paths import ROOT, SEP, Normalizer
from otel_run.analyse._profile import RunProfile, profile, table_from_trace, tables_from_otlp
from otel_run.store._merge import merge, parse_request
from otel_run.store._model import Trace
from tests.synth import Node, runs, sized_tree


def _tree(step_count: int = 3, extra: Node | None = None) -> Node:
    children = [
        Node("parse", self_ms=5),
        Node("GET /items/{uuid}", self_ms=2, count=step_count, kind=3, attributes={"http.response.body.size": 1000}),
        Node("compute {tmp}/work", self_ms=10),
    ]
    if extra is not None:
        children.append(extra)
    return Node("app", service="app", self_ms=1, children=children)


def _profiles(tree: Node, n: int, seed: int, scale: dict[str, float] | None = None) -> list[RunProfile]:
    normalize = Normalizer()
    out = []
    for request in runs(tree, n, seed=seed, scale=scale):
        (table,) = tables_from_otlp([request], ("http.request.body.size", "http.response.body.size"))
        out.append(profile(table, normalize))
    return out


def _row(result: DiffResult, leaf: str) -> Row:
    [row] = [r for r in result.rows if r.path.rsplit(SEP, 1)[-1].startswith(leaf)]
    return row


def test_a_20_percent_slowdown_of_one_span_is_flagged_and_ranked_first() -> None:
    result = diff(_profiles(_tree(), 30, seed=1), _profiles(_tree(), 30, seed=2, scale={"compute {tmp}/work": 1.2}))
    assert result.rows[0].path == ROOT
    top = result.rows[1]
    assert top.path.endswith("compute {tmp}/work")
    assert top.significant and 15 < (top.change_pct or 0) < 25
    assert top.ci_low_ms > 0 and top.impact_ms > 1.5  # ~2 ms of the root's ~22 ms
    assert not _row(result, "parse").significant


def test_a_1_percent_change_under_5_percent_noise_is_rarely_flagged() -> None:
    flagged = 0
    trials = 40
    for seed in range(trials):
        before = _profiles(_tree(), 30, seed=100 + seed)
        after = _profiles(_tree(), 30, seed=500 + seed, scale={"compute {tmp}/work": 1.01})
        flagged += _row(diff(before, after), "compute").significant
    # the test's power against 1% under 5% noise with 30 runs is about 10%; never "usually flagged"
    assert flagged / trials <= 0.25


def test_identical_distributions_stay_at_or_under_alpha_across_paths_and_trials() -> None:
    significant = total = 0
    for seed in range(60):
        result = diff(_profiles(_tree(), 10, seed=seed), _profiles(_tree(), 10, seed=1000 + seed))
        for row in result.rows:
            if row.before["count"] == row.after["count"] and row.before_ms > 0:
                total += 1
                significant += row.significant
    rate = significant / total
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / total), rate


def test_structure_added_removed_and_count_changes() -> None:
    before = _profiles(_tree(step_count=3, extra=Node("legacy cache warm", self_ms=1)), 6, seed=3)
    after = _profiles(_tree(step_count=5, extra=Node("retry", self_ms=1)), 6, seed=4)
    result = diff(before, after)
    structural = result.structural()
    assert [r.path.rsplit(SEP, 1)[-1] for r in structural["added"]] == ["retry"]
    assert [r.path.rsplit(SEP, 1)[-1] for r in structural["removed"]] == ["legacy cache warm"]
    [changed] = structural["count_changed"]
    assert changed.path.rsplit(SEP, 1)[-1] == "GET /items/{uuid}"
    assert (changed.before["count"], changed.after["count"]) == (3, 5)
    assert (changed.before["bytes"], changed.after["bytes"]) == (3000, 5000)
    assert _row(result, "retry").only_in == "after"
    assert _row(result, "legacy").only_in == "before"


def test_names_differing_only_by_ids_ports_and_temp_paths_are_one_path() -> None:
    tree = sized_tree(200)
    result = diff(_profiles(tree, 5, seed=1), _profiles(tree, 5, seed=2))
    assert not result.structural()["added"] and not result.structural()["removed"]
    assert all(r.only_in is None for r in result.rows)


def test_too_few_runs_warns_and_still_gives_a_result() -> None:
    result = diff(_profiles(_tree(), 1, seed=1), _profiles(_tree(), 1, seed=2, scale={"parse": 3}))
    assert any("fewer than 4" in w for w in result.warnings)
    assert _row(result, "parse").change_pct is not None and not _row(result, "parse").significant


def test_fail_above_picks_significant_slowdowns_only() -> None:
    before = _profiles(_tree(), 12, seed=1)
    result = diff(before, _profiles(_tree(), 12, seed=2, scale={"compute {tmp}/work": 1.5}))
    assert {r.path.rsplit(SEP, 1)[-1] for r in significant_slowdowns(result, 20)} >= {"compute {tmp}/work"}
    assert significant_slowdowns(result, 80) == []
    faster = diff(before, _profiles(_tree(), 12, seed=3, scale={"compute {tmp}/work": 0.5}))
    assert significant_slowdowns(faster, 0) == []


def test_orphans_and_clock_skew_are_warned_about() -> None:
    requests = runs(_tree(), 4, seed=9)
    for request in requests:
        spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
        spans[0]["parentSpanId"] = "ffffffffffffffff"  # its parent was never received
        spans[1]["startTimeUnixNano"] = str(int(spans[1]["startTimeUnixNano"]) - 50_000_000)
    normalize = Normalizer()
    profiles = [profile(tables_from_otlp([r], ())[0], normalize) for r in requests]
    result = diff(profiles, profiles)
    assert any("parent is missing" in w for w in result.warnings)
    assert any("clock skew" in w for w in result.warnings)


def test_the_fast_table_agrees_with_the_merged_trace() -> None:
    # otel-run's fragments: a process span written at start, completed at exit, reaped by its parent
    request = runs(_tree(), 1, seed=5)[0]
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    child = spans[0]
    start = {**child, "endTimeUnixNano": child["startTimeUnixNano"]}
    start["attributes"] = [{"key": "otel_run.record", "value": {"stringValue": "start"}}]
    reap = {**child, "name": "reaped", "attributes": [{"key": "otel_run.record", "value": {"stringValue": "reap"}}]}
    spans[1:1] = [start, reap]
    normalize = Normalizer()
    (table,) = tables_from_otlp([request], ())
    fast = profile(table, normalize)
    records = list(parse_request(request))
    trace = Trace(records[0].trace_id, merge(records))
    slow = profile(table_from_trace(trace, ()), normalize)
    assert fast.paths == slow.paths
    assert fast.wall_ns == slow.wall_ns and fast.spans == slow.spans


def test_the_msgspec_reader_takes_otel_runs_jsonl_with_fragments_and_agrees() -> None:
    import json

    from otel_run.analyse._profile import tables_from_bytes

    request = runs(_tree(), 1, seed=6)[0]
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    first = spans[0]
    start = {**first, "attributes": [{"key": "otel_run.record", "value": {"stringValue": "start"}}]}
    lines = [json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [start]}]}]}), json.dumps(request)]
    data = ("\n".join(lines) + '\n{"resourceSpans": [{"scop').encode()  # and a partial last line
    fast = tables_from_bytes(data, ("http.response.body.size",), "f.jsonl")
    assert fast is not None, "msgspec path fell back"
    (table,), warnings = fast
    assert warnings == ["f.jsonl:3: incomplete last line skipped"]
    (slow,) = tables_from_otlp([json.loads(line) for line in lines], ("http.response.body.size",))
    normalize = Normalizer()
    assert profile(table, normalize).paths == profile(slow, normalize).paths
    assert tables_from_bytes(b'{"data": []}', ()) is None  # not OTLP: the general path explains


def _request(spans: list[dict[str, object]]) -> dict[str, object]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}


def _span(span_id: str, parent: str | None, name: str, start: int, end: int) -> dict[str, object]:
    out: dict[str, object] = {"traceId": "ab" * 16, "spanId": span_id, "name": name}
    out.update(startTimeUnixNano=str(start), endTimeUnixNano=str(end))
    if parent:
        out["parentSpanId"] = parent
    return out


def test_a_chain_deeper_than_the_path_limit_folds_into_few_paths() -> None:
    """Each span's path held its whole chain of names: a 5,000-deep chain gave
    5,000 paths of up to 5,000 segments (span-diff printed 79 MB in 60 s)."""
    from otel_run.analyse._profile import MAX_PATH_DEPTH

    n = 5000
    spans = [_span(f"{i + 1:016x}", f"{i:016x}" if i else None, "level", i, 2 * n - i) for i in range(n)]
    (table,) = tables_from_otlp([_request(spans)], ())
    run = profile(table, Normalizer())
    assert run.folded == n - 1 - MAX_PATH_DEPTH
    assert len(run.paths) == MAX_PATH_DEPTH + 2  # the root, a path per level up to the limit, the folded one
    assert max(key.count(SEP) for key in run.paths) == MAX_PATH_DEPTH + 2  # ... > level > … > level
    result = diff([run], [run])
    assert any(f"deeper than {MAX_PATH_DEPTH} levels" in w for w in result.warnings)


def test_a_run_whose_spans_all_loop_still_has_a_root() -> None:
    """span-diff on a parent cycle: ``min() arg is an empty sequence`` (no span without a parent)."""
    spans = [
        _span("a1" * 8, "c3" * 8, "root", 0, 100),
        _span("b2" * 8, "a1" * 8, "work", 10, 60),
        _span("c3" * 8, "b2" * 8, "step", 20, 40),
    ]
    (table,) = tables_from_otlp([_request(spans)], (), "t.jsonl")
    run = profile(table, Normalizer(), root_span_id="c3" * 8)
    assert run.root_name == "step" and run.wall_ns == 20  # the run's root, in the loop: walked, no hang
    run = profile(table, Normalizer())
    assert run.root_name == "root" and sorted(run.paths) == sorted(
        [ROOT, f"{ROOT}{SEP}work", f"{ROOT}{SEP}work{SEP}step"]
    )
    assert any("t.jsonl: parent chain loops" in w for w in run.warnings)


def test_both_readers_check_ids_and_times_alike() -> None:
    """msgspec's reader takes only ids and times the validator takes as they
    are and leaves the rest to the general reader, which says what is wrong;
    ids in capitals or base64 (Tempo) are the same ids there."""
    import base64
    import json

    from otel_run.analyse._profile import tables_from_bytes
    from otel_run.store._validate import Checker

    good = [
        _span("a1" * 8, None, "root", 0, 100),
        _span("b2" * 8, "a1" * 8, "work", 10, 60),
        _span("c3" * 8, "b2" * 8, "step", 20, 9_999_999_999_999_999_999),
    ]
    fast = tables_from_bytes(json.dumps(_request(good)).encode(), (), "t.jsonl")
    assert fast is not None
    ((fast_table,), _) = fast
    assert fast_table.ids == ["a1" * 8, "b2" * 8, "c3" * 8] and fast_table.parents == [None, "a1" * 8, "b2" * 8]
    b64 = base64.b64encode(bytes.fromhex("b2" * 8)).decode()
    other_forms = [good[0], _span(b64, "A1" * 8, "work", 10, 60), good[2]]
    (slow_table,) = tables_from_otlp([Checker("t.jsonl").request(_request(other_forms))], (), "t.jsonl")
    assert (slow_table.ids, slow_table.parents) == (fast_table.ids, fast_table.parents)
    for bad in (
        _span(b64, "a1" * 8, "base64", 10, 60),
        _span("A1" * 8, None, "capitals", 10, 60),
        _span("zz", "a1" * 8, "x", 10, 60),
        _span("0x0123456789abcd", "a1" * 8, "x", 10, 60),
        _span("0" * 16, "a1" * 8, "x", 10, 60),
        _span("d4" * 8, "zz", "x", 10, 60),
        _span("d4" * 8, None, "x", 10, "-5"),
        _span("d4" * 8, None, "x", 10, "1_000"),
        _span("d4" * 8, None, "x", 10, "١٧٠٠"),
        _span("d4" * 8, None, "x", 10, 2**64),
    ):
        assert tables_from_bytes(json.dumps(_request([*good, bad])).encode(), (), "t.jsonl") is None, bad


def test_canonical_hex_takes_nothing_the_validator_would_change_or_refuse() -> None:
    import random

    from otel_run.store._validate import Invalid, canonical_hex, hex_id

    rng = random.Random(5)
    alphabet = "0123456789abcdefABCDEFxz+/=_ \n١"
    for nbytes in (8, 16):
        for _ in range(20_000):
            size = rng.choice((2 * nbytes, 2 * nbytes, rng.randint(0, 40)))
            value = "".join(rng.choice(alphabet) for _ in range(size))
            if rng.random() < 0.3:
                value = rng.randbytes(nbytes).hex()
            ids = [rng.randbytes(nbytes).hex(), value]
            try:
                same = all(hex_id(v, nbytes) == v for v in ids)
            except Invalid:
                same = False
            assert canonical_hex(ids, nbytes) == same, value


def test_the_table_walk_of_the_critical_path_is_the_trees() -> None:
    """span-diff's critical path (table indexes, no recursion) agrees with otel-trace show's."""
    import random

    from otel_run.analyse._profile import CRITICAL
    from otel_run.analyse._tree import critical_path
    from otel_run.store._model import Span

    rng = random.Random(3)
    for _ in range(200):
        spans = [Span("t", "0", None, "n0", start_ns=0, end_ns=1000)]
        for i in range(1, rng.randint(2, 40)):
            parent = spans[rng.randrange(len(spans))]
            start = rng.randint(parent.start_ns - 5, parent.end_ns)
            spans.append(Span("t", str(i), parent.span_id, f"n{i}", start_ns=start, end_ns=start + rng.randint(0, 400)))
        trace = Trace("t", spans)
        on_path: dict[str, float] = {}
        for span, ns in critical_path(trace.roots[0]):
            on_path[span.name] = on_path.get(span.name, 0) + ns
        run = profile(table_from_trace(trace, ()), Normalizer())
        by_leaf = {key.rsplit(SEP, 1)[-1]: stats[CRITICAL] for key, stats in run.paths.items() if stats[CRITICAL]}
        by_leaf[spans[0].name] = by_leaf.pop(ROOT, 0.0)
        assert {k: v for k, v in by_leaf.items() if v} == on_path
