from __future__ import annotations

import json
from pathlib import Path

import pytest

from otel_run.bootstrap import _boot


def test_traceparent_parsing() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert _boot.parse_traceparent(good) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert _boot.parse_traceparent(good.upper()) is not None
    for bad in (
        "",
        "junk",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-xyz-00f067aa0ba902b7-01",
    ):
        assert _boot.parse_traceparent(bad) is None
    # future versions may append fields
    assert _boot.parse_traceparent(good.replace("00-", "01-", 1) + "-more") is not None


def test_resource_attributes_parsing() -> None:
    assert _boot.parse_resource_attributes("a=1, b = two%20words ,bad,c=%E2%9C%93") == {
        "a": "1",
        "b": "two words",
        "c": "✓",
    }


def test_derived_span_ids_are_stable_and_distinct() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    ids = {_boot.derived_span_id(trace, parent, pid) for parent in range(100, 110) for pid in range(1000, 1100)}
    assert len(ids) == 1000
    assert _boot.derived_span_id(trace, 1, 2) == _boot.derived_span_id(trace, 1, 2)
    assert all(len(i) == 16 and i != "0" * 16 for i in ids)


@pytest.mark.parametrize(
    ("argv", "service", "name"),
    [
        (["/usr/bin/python3", "-m", "pytest", "-x"], "pytest", "python3 -m pytest -x"),
        (["python", "/venv/bin/codeflash", "optimize", "foo.py"], "codeflash", "codeflash optimize foo.py"),
        (["python", "-X", "importtime", "tool.py"], "tool", "tool.py"),
        (["python", "-c", "print(1)"], "python", "python -c print(1)"),
        (
            ["python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"],
            "multiprocessing",
            "multiprocessing spawn",
        ),
        (["python", "pkg/__main__.py"], "pkg", "__main__.py"),
    ],
)
def test_python_service_and_span_names(argv: list[str], service: str, name: str) -> None:
    assert _boot._python_service(argv) == service
    assert _boot._python_span_name(argv) == name


def test_a_package_main_run_by_path_is_named_by_its_dotted_package(tmp_path: Path) -> None:
    main = tmp_path / "site-packages" / "jedi" / "inference" / "subprocess" / "__main__.py"
    main.parent.mkdir(parents=True)
    for package in (main.parent, main.parent.parent, main.parent.parent.parent):
        (package / "__init__.py").write_text("")
    main.write_text("")
    # not "subprocess", which reads as the standard library's
    assert _boot._python_service(["python", str(main), "arg"]) == "jedi.inference.subprocess"


def test_span_json_is_valid_otlp_json_with_redaction() -> None:
    line = _boot.request_json(
        _boot.attributes_json({"service.name": "svc"}),
        _boot.OTEL_RUN_SCOPE,
        [
            _boot.span_json(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                None,
                'quote " and \n newline \udcff',
                1,
                2,
                {"s": "x", "i": 3, "f": 1.5, "b": True, "l": ["a", 1], "nan": float("nan"), "api_key": "secret-value"},
                events=[("e", 1, {"k": "v"})],
                status=(_boot.STATUS_ERROR, "boom"),
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


def test_with_site_dir_is_first_and_once() -> None:
    path = _boot.with_site_dir(f"/a:{_boot.SITE_DIR}:/b")
    assert path.split(":") == [_boot.SITE_DIR, "/a", "/b"]
    assert _boot.with_site_dir(None) == _boot.SITE_DIR
