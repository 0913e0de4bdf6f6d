from __future__ import annotations

import pytest

from otel_run.analyse._paths import Normalizer


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("GET /items/3f9c2a1b-0c4d-4e5f-8a9b-0c1d2e3f4a5b", "GET /items/a41b0000-1111-4222-8333-444455556666"),
        ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace 00f067aa0ba902b700f067aa0ba902b7"),
        ("pytest /tmp/tmpab12cd/test_foo.py", "pytest /tmp/tmpzz99yy/test_foo.py"),
        (
            "pytest_new_process_discovery.py /tmp/otel-demo-w_fnylla/fixture",
            "pytest_new_process_discovery.py /tmp/otel-demo-q1/fixture",
        ),
        ("connect localhost:41234", "connect localhost:55001"),
        ("worker pid 12345", "worker pid 777"),
        ("GET /users/1234/orders", "GET /users/98/orders"),
    ],
)
def test_run_specific_parts_are_normalised_away(a: str, b: str) -> None:
    normalize = Normalizer()
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("POST /ai/optimize", "POST /ai/testgen"),
        ("python3.11 -m pytest", "python3.12 -m pytest"),
        ("codeflash 0.20.6", "codeflash 0.20.5"),
        ("chat gpt-4.1", "chat gpt-4.2"),
        ("pytest /work/a/test_x.py", "pytest /work/b/test_x.py"),
    ],
)
def test_meaningful_differences_are_kept(a: str, b: str) -> None:
    normalize = Normalizer()
    assert normalize(a) != normalize(b)


def test_extra_patterns_and_the_machines_temp_dir() -> None:
    normalize = Normalizer([r"round \d"], temp_dir="/scratch/t")
    assert normalize("round 1 of build") == normalize("round 2 of build") == "{*} of build"
    assert normalize("open /scratch/t/abc/x") == normalize("open /scratch/t/def/x") == "open {tmp}/x"
