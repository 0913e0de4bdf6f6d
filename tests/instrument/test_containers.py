"""What a container gets to join the trace, shared by the CLI and the SDK paths."""

from __future__ import annotations

import os

from otel_run import _wire
from otel_run.instrument._containers import IN_LIB, IN_STORE, image_name, image_tag, injection, parse_time


def test_image_names_and_tags() -> None:
    assert (image_name("reg:5000/team/img:3.11"), image_tag("reg:5000/team/img:3.11")) == ("reg:5000/team/img", "3.11")
    assert (image_name("img"), image_tag("img")) == ("img", None)
    assert (image_name("img:1@sha256:abc"), image_tag("img:1@sha256:abc")) == ("img", "1")


def test_engine_timestamps_keep_nanoseconds() -> None:
    assert parse_time("2026-11-27T10:05:12.649752986Z") == 1795773912649752986
    assert parse_time("2026-11-27T10:05:12.649752986+00:00") == 1795773912649752986
    assert parse_time(1795773912.5) == 1795773912500000000
    assert parse_time("yesterday") is None


def test_injection_mounts_the_package_the_bootstrap_runs_from() -> None:
    env, mounts = injection({"OTEL_SERVICE_NAME": "job", "OTEL_RUN_STORE": "/s"}, "a" * 32, "b" * 16, "/store")
    assert env["TRACEPARENT"] == _wire.traceparent("a" * 32, "b" * 16)
    assert env["OTEL_SERVICE_NAME"] is None  # passed through from the caller's environment
    assert env["OTEL_RUN_STORE"] == IN_STORE
    lib = next(m for m in mounts if m["target"] == f"{IN_LIB}/otel_run")
    assert lib["source"] == os.path.dirname(os.path.abspath(_wire.__file__))
    assert os.path.isfile(os.path.join(lib["source"], "bootstrap", "site", "sitecustomize.py"))
    assert injection({}, "a" * 32, "b" * 16, None)[1] == []  # no store: context only
